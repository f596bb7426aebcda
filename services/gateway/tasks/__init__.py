"""The task API's REST face: seed 001's task routes and DashScope's async protocol, over gRPC.

The queue itself is the tasks service (services/tasks). Here: `prepare` (checks a request with
the gateway's catalogue and size rules, makes the tasks service's spec), `client` (the gRPC calls),
`view` (a task as plain values), `protocol` (wire shapes), `router` (the routes).
"""

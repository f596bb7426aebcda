"""Asynchronous image tasks: seed 001's task API and DashScope's async protocol, on a durable queue.

`database` (the table, the engine), `store` (the queue's SQL), `worker` (runs claimed tasks under
a lease), `retention` (deletes old results and their images), `serving` (the service the routes
use), `protocol` (wire shapes), `router` (the routes), `settings`.
"""

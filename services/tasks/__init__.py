"""The task service (seed 001): a durable queue of image tasks behind the `imagemesh.v1.Tasks` gRPC API.

`database` (the table, the engine), `store` (the queue's SQL), `worker` (runs claimed tasks under
a lease), `runner` (what running a task means: gRPC calls to a model server or the providers
service, images into storage), `retention` (deletes old results and their images), `serving`
(create, read, cancel, list, watch: the plain class the servicer delegates to), `convert`
(messages <-> plain records), `servicer`, `service` (start and serve), `settings`.
"""

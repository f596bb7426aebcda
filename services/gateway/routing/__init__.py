"""Queue-aware routing across the replicas of a model server.

The gateway keeps a channel to every replica of `qwen_image` and `qwen_edit` (`replicas.py`:
several addresses, or `dns:///` names it resolves itself), knows how much work each has
(`load.py`: the servers' `imagemesh-load` trailers and their polled `Load` RPC, plus the calls it
sent since), sends each call to the one with the least (`picker.py`: power of two choices, or
round-robin), and sends a call that provably did not start to another replica (`failover.py`).
`router.py` does the gRPC part; `stubs.py` makes a router look like a generated stub.
"""

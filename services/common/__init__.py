"""Pieces every imagemesh service shares: the gRPC server bootstrap, errors, logs and metrics."""

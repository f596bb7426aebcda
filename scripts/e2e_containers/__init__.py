"""`make e2e-containers`: the rendered manifests run as containers and checked end to end."""

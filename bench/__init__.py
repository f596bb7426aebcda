"""Benchmarks: each `bench/<name>.py` with a `main()` compares side by side and prints its target."""

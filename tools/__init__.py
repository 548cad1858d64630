"""Repository tooling: the TLC bridge, benchmarks, trace helpers."""

"""Benchmark harness for the hybrid search service (issue 9): ``python -m bench``."""

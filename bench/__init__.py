"""Lakepulse benchmarks: ``python -m bench.pipeline`` (see bench/README.md)."""

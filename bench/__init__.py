"""Benchmarks on the real local stack: `python -m bench [--quick]` (see BENCHMARKS.md)."""

"""Benchmarks for langchain-coasty: run with ``make bench`` (``python -m benchmarks.run``)."""

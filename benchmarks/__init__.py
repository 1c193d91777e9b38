"""Benchmarks for nncore (run with ``make bench``)."""

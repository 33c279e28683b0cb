"""Benchmarks: `python -m bench` runs every bench module; each prints and saves its figures."""

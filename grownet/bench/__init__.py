"""Benchmarks: speed measured side by side in one run, with provenance. Not tests."""

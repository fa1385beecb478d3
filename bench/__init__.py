"""Benchmarks: ratios against raw baselines measured in the same run (see README)."""

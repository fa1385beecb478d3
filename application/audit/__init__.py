"""Audit and privacy: history export, aggregates as of a time, data rights."""

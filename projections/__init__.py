"""Projectors that follow the event log and write the read models, exactly once."""

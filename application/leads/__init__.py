"""Leads and pipeline: lead and stage commands, board and lead queries."""

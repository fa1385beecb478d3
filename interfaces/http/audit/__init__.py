"""Routes of audit and privacy."""

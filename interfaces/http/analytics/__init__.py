"""Routes of analytics."""

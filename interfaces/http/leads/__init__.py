"""Routes of the leads and pipeline context."""

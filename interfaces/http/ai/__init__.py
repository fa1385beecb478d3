"""Routes of the AI context."""

"""Routes of identity and organizations."""

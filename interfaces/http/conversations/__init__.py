"""Routes of conversations and calls, and provider webhooks."""

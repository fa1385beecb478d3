"""Conversations and calls: messages, calls, inbox, outbox."""

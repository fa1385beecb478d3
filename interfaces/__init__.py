"""Adapters at the edge of Loved CRM: persistence, HTTP and CLI."""

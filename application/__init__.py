"""Use cases of Loved CRM: command handlers, queries over read models, and ports."""

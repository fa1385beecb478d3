"""Pure domain model of Loved CRM: aggregates, events, value objects and rules (no I/O)."""

"""Alembic environment: the connection is handed in by `crm migrate` (interfaces.migrate)."""

from __future__ import annotations

from alembic import context

import interfaces.revocations  # registers revoked_access_tokens on the metadata
import interfaces.users  # noqa: F401 - registers the users table on the metadata
import projections.registry  # noqa: F401 - registers every read-model table
from projections.base import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

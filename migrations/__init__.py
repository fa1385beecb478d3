"""Alembic migrations of the read-model and users tables (PostgreSQL and SQLite)."""

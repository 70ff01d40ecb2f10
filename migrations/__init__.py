"""Alembic migrations: the schema exists only through these."""

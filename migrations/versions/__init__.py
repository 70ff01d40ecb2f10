"""Alembic revisions, one per schema change, each with a downgrade."""

"""Alembic migrations of the node's database (every schema change upgrades and downgrades)."""

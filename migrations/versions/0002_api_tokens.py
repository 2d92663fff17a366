"""API tokens: bearer tokens of the HTTP API, kept as SHA-256 digests, with a role.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum("read", "operator", name="tokenrole", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_sha256"),
    )
    # the audit queries of the API filter by these
    op.create_index("ix_receptions_received_at", "receptions", ["received_at"])
    op.create_index("ix_image_scores_instance_scored", "image_scores", ["instance_id", "scored_at"])


def downgrade() -> None:
    op.drop_index("ix_image_scores_instance_scored", table_name="image_scores")
    op.drop_index("ix_receptions_received_at", table_name="receptions")
    op.drop_table("api_tokens")

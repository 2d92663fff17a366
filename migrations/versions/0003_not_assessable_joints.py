"""Joints that are not assessable: a joint score may have no grades, with the reason; an image
score says how many joints its totals cover.

Existing rows were all graded: they become assessable, and ``joints_scored`` is their count of
joints. Downgrading removes the joints that are not assessable (the old schema cannot hold a
joint without grades, and writing a grade for one would be a guess); the totals, which never
included them, stay right.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("joint_scores", schema=None) as batch_op:
        batch_op.alter_column("jsn", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("erosion", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("assessable", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("reason", sa.Text(), server_default="", nullable=False))
    # SQLite adds a column in place: no copy of image_scores, which joint_scores refers to
    op.add_column(
        "image_scores",
        sa.Column("joints_scored", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute(
        "UPDATE image_scores SET joints_scored = "
        "(SELECT count(*) FROM joint_scores WHERE joint_scores.image_score_id = image_scores.id)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM joint_scores WHERE NOT assessable")
    # in place (SQLite 3.35+), not by copying image_scores, which joint_scores refers to
    op.drop_column("image_scores", "joints_scored")
    with op.batch_alter_table("joint_scores", schema=None) as batch_op:
        batch_op.drop_column("reason")
        batch_op.drop_column("assessable")
        batch_op.alter_column("erosion", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("jsn", existing_type=sa.Integer(), nullable=False)

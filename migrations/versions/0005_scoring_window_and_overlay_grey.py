"""What scoring keeps for the build: the display window the image was read with and the store
key of the grey copy the overlay is drawn on, so that building the results never decodes the
source again.

Existing rows get none of them: their build decodes the source, as it did. Downgrading drops
the columns (the grey copies stay in the store, unused).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("window_centre", sa.Float()),
    ("window_width", sa.Float()),
    ("window_voi", sa.String(16)),
    ("window_function", sa.String(16)),
    ("window_explanation", sa.Text()),
    ("overlay_grey_key", sa.String(128)),
)


def upgrade() -> None:
    # in place (SQLite adds a column without copying image_scores, which joint_scores refers to)
    for name, type_ in _COLUMNS:
        op.add_column("image_scores", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("image_scores", name)

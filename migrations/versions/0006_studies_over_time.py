"""Studies over time: what assembling a study needs, its reports, and their delivery.

* ``studies`` gains the issuer of its Patient ID, the time of its newest image
  (``last_image_at``, set by the receiver), the ``last_image_at`` its current report covers
  (``assembled_through``), when it was assembled, and its report version. Existing studies get
  no ``last_image_at``: they are not assembled until an image of theirs arrives (a whole
  archive is not reported again at upgrade).
* ``study_reports``: one row per version of a study's report, with what it says (JSON).
* ``result_objects.job_id`` becomes nullable and ``study_report_id`` names the report of a
  study SR (or of a study overlay SC, one per hand image), so a study SR goes through the
  same outbox (deliveries) as the per-image objects.

Downgrading removes the study SRs' result objects and their deliveries (the files stay in the
store), then the table and the columns.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _study_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("issuer_of_patient_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("last_image_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assembled_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assembled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report_version", sa.Integer(), nullable=False, server_default="0"),
    )


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    # in place (SQLite adds a column without copying studies, which instances refers to)
    for column in _study_columns():
        op.add_column("studies", column)
    op.create_index("ix_studies_last_image_at", "studies", ["last_image_at"])
    op.create_table(
        "study_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
        sa.Column("store_key", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaces_id", sa.Integer(), sa.ForeignKey("study_reports.id"), nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "version"),
        sa.UniqueConstraint("sop_instance_uid"),
        sa.UniqueConstraint("store_key"),
    )
    op.create_index("ix_study_reports_study_id", "study_reports", ["study_id"])
    op.create_index("ix_study_reports_model_version", "study_reports", ["model_version"])
    with _deliveries_set_aside(), op.batch_alter_table("result_objects") as batch:
        batch.alter_column("job_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("study_report_id", sa.Integer(), nullable=True))
        # not unique: a report has its study SR and a study overlay SC per hand image
        batch.create_index("ix_result_objects_study_report_id", ["study_report_id"])
        batch.create_foreign_key(
            "fk_result_objects_study_report_id", "study_reports", ["study_report_id"], ["id"]
        )


@contextmanager
def _deliveries_set_aside() -> Iterator[None]:
    """SQLite changes a column's nullability by copying the table, dropping it and renaming
    the copy; with foreign keys on (the node's engine, and PRAGMA foreign_keys cannot change
    inside the migration's transaction) the drop fails while deliveries refer to it. So the
    deliveries wait in a temporary table meanwhile and come back unchanged (ids included)."""
    if not _sqlite():
        yield
        return
    op.execute("CREATE TEMP TABLE deliveries_0006 AS SELECT * FROM deliveries")
    op.execute("DELETE FROM deliveries")
    yield
    op.execute("INSERT INTO deliveries SELECT * FROM deliveries_0006")
    op.execute("DROP TABLE deliveries_0006")


def downgrade() -> None:
    study_objects = "SELECT id FROM result_objects WHERE study_report_id IS NOT NULL"
    op.execute(f"DELETE FROM deliveries WHERE result_id IN ({study_objects})")
    op.execute("DELETE FROM result_objects WHERE study_report_id IS NOT NULL")
    with _deliveries_set_aside(), op.batch_alter_table("result_objects") as batch:
        batch.drop_constraint("fk_result_objects_study_report_id", type_="foreignkey")
        batch.drop_index("ix_result_objects_study_report_id")
        batch.drop_column("study_report_id")
        batch.alter_column("job_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_study_reports_model_version", table_name="study_reports")
    op.drop_index("ix_study_reports_study_id", table_name="study_reports")
    op.drop_table("study_reports")
    op.drop_index("ix_studies_last_image_at", table_name="studies")
    for column in reversed(_study_columns()):
        op.drop_column("studies", column.name)

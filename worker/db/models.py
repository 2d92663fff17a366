"""The node's system of record (SQLAlchemy 2, typed): what arrived, what was done, what was sent.

The broker only carries work; everything a later question can be about lives here. Uniqueness
rules carry the idempotency of the node: one instance row per (SOP Instance UID, content hash),
one job per (instance, model version), one image score per job, one result object per (job,
kind), one delivery per (result object, destination). A task that runs twice meets these
constraints and changes nothing.

``audit_events`` is append-only: the migration installs triggers that refuse UPDATE and DELETE.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

UID = String(64)  #: a DICOM UID is at most 64 characters


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON}  # noqa: RUF012


def _enum(cls: type[enum.Enum]) -> Enum:
    """Enums stored as their value in a plain string column (no native type to migrate)."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=24,
        values_callable=lambda e: [m.value for m in e],
    )


class InstanceStatus(enum.StrEnum):
    RECEIVED = "received"  #: filed, routing not decided yet
    QUEUED = "queued"  #: a scoring job waits or runs
    SKIPPED = "skipped"  #: not a hand radiograph by the routing rules (reason recorded)
    SCORED = "scored"
    FAILED = "failed"  #: terminal, with its reason


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  #: due at ``next_attempt_at``
    SENT = "sent"
    FAILED = "failed"  #: gave up after the last attempt; ``rascore outbox resend`` revives it


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    study_date: Mapped[dt.date | None] = mapped_column(index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the issuer within which ``patient_id`` names one patient ("" when the sender gave none)
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    #: when the receiver last filed a new image of the study (None: before revision 0006);
    #: the study is assembled once this is ``RASCORE_STUDY_QUIET_S`` old
    last_image_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    #: the ``last_image_at`` the current report covers; the study is due for assembly while
    #: the two differ (a late image re-opens it; None: never assembled, or re-opened)
    assembled_through: Mapped[dt.datetime | None] = mapped_column()
    assembled_at: Mapped[dt.datetime | None] = mapped_column()
    #: version of the latest study report (0: none yet)
    report_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    instances: Mapped[list[Instance]] = relationship(back_populates="study")
    reports: Mapped[list[StudyReport]] = relationship(
        back_populates="study", order_by="StudyReport.version"
    )


class StudyReport(Base):
    """One version of a study's report: both hands of a visit, and its progression.

    ``content`` is what the study SR says (worker.jobs.study builds both from it): per hand
    per joint the chosen grades and the image they come from, the totals and how many joints
    they cover, and the comparison with the patient's earlier studies."""

    __tablename__ = "study_reports"
    __table_args__ = (UniqueConstraint("study_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    series_instance_uid: Mapped[str] = mapped_column(UID)
    store_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the version this one replaces (its SR is the Predecessor Document of this one's)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("study_reports.id"))
    content: Mapped[dict[str, Any]] = mapped_column()

    study: Mapped[Study] = relationship(back_populates="reports")


class Instance(Base):
    """One distinct image: a resent identical image is a new :class:`Reception` of this row."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("sop_instance_uid", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, default="")
    sop_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    sha256: Mapped[str] = mapped_column(String(64))  #: of the data set as received
    transfer_syntax: Mapped[str] = mapped_column(UID)
    size: Mapped[int] = mapped_column(BigInteger)
    modality: Mapped[str] = mapped_column(String(16), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    laterality: Mapped[str] = mapped_column(String(4), default="")
    #: where the file lives, relative to the store folder; a name the node chose (uuid)
    store_key: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[InstanceStatus] = mapped_column(_enum(InstanceStatus), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")  #: why skipped or failed
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)

    study: Mapped[Study] = relationship(back_populates="instances")
    receptions: Mapped[list[Reception]] = relationship(back_populates="instance")
    jobs: Mapped[list[Job]] = relationship(back_populates="instance")


class Reception(Base):
    """Every C-STORE the node acknowledged: who sent what, when."""

    __tablename__ = "receptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"), index=True)
    calling_ae_title: Mapped[str] = mapped_column(String(16), index=True)
    calling_host: Mapped[str] = mapped_column(String(64))
    called_ae_title: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    duplicate: Mapped[bool] = mapped_column(default=False)

    instance: Mapped[Instance] = relationship(back_populates="receptions")


class Job(Base):
    """Scoring one instance with one model version; at most one per pair."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("instance_id", "model_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: last time the job (or, once done, its build) was put on the broker; None while that
    #: failed (broker down)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    #: when its result objects and deliveries were all made (None: still to do)
    built_at: Mapped[dt.datetime | None] = mapped_column()

    instance: Mapped[Instance] = relationship(back_populates="jobs")
    attempts: Mapped[list[JobAttempt]] = relationship(back_populates="job")
    score: Mapped[ImageScoreRow | None] = relationship(back_populates="job")
    results: Mapped[list[ResultObject]] = relationship(back_populates="job")


class JobAttempt(Base):
    __tablename__ = "job_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    task: Mapped[str] = mapped_column(String(32))  #: score | build
    worker: Mapped[str] = mapped_column(String(128))  #: host:pid
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str] = mapped_column(Text, default="")

    job: Mapped[Job] = relationship(back_populates="attempts")


class ImageScoreRow(Base):
    """The totals of one scored image; its joints are :class:`JointScoreRow` rows."""

    __tablename__ = "image_scores"
    __table_args__ = (Index("ix_image_scores_instance_scored", "instance_id", "scored_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    model_device_uid: Mapped[str] = mapped_column(UID)
    status: Mapped[str] = mapped_column(String(64))  #: the scorer's, e.g. "no hand found"
    #: totals over the assessable joints only; ``joints_scored`` says how many that is
    total_jsn: Mapped[int] = mapped_column(Integer)
    total_erosion: Mapped[int] = mapped_column(Integer)
    joints_scored: Mapped[int] = mapped_column(Integer, server_default="0")
    #: {"L": {"jsn": …, "erosion": …, "joints_scored": …}, …} (assessable joints only)
    hands: Mapped[dict[str, Any]] = mapped_column()
    #: {"labels": [expected, not found], "reasons": {label: "not imaged" | "not found"}}
    missing: Mapped[dict[str, Any]] = mapped_column()
    pixel_spacing_mm: Mapped[float | None] = mapped_column(Float)
    pixel_spacing_assumed: Mapped[bool] = mapped_column(default=False)
    timings_ms: Mapped[dict[str, Any]] = mapped_column()
    scored_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the display window the image was read with (modality units), so that building the GSPS
    #: need not decode it again; None for images scored before it was kept
    window_centre: Mapped[float | None] = mapped_column(Float)
    window_width: Mapped[float | None] = mapped_column(Float)
    #: what set it: "window", "voi-lut" or "histogram", its function, and its explanation
    window_voi: Mapped[str | None] = mapped_column(String(16))
    window_function: Mapped[str | None] = mapped_column(String(16))
    window_explanation: Mapped[str | None] = mapped_column(Text)
    #: store key of the 8-bit grey copy the overlay SC is drawn on (None: decode the source)
    overlay_grey_key: Mapped[str | None] = mapped_column(String(128))

    job: Mapped[Job] = relationship(back_populates="score")
    joints: Mapped[list[JointScoreRow]] = relationship(
        back_populates="image_score", order_by="JointScoreRow.label"
    )


class JointScoreRow(Base):
    """One found joint: graded, or (``assessable`` False) kept with the reason and no grades."""

    __tablename__ = "joint_scores"
    __table_args__ = (UniqueConstraint("image_score_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_score_id: Mapped[int] = mapped_column(ForeignKey("image_scores.id"), index=True)
    label: Mapped[str] = mapped_column(String(8))  #: e.g. R_PIP3 (DESIGN.md)
    box_x: Mapped[int] = mapped_column(Integer)
    box_y: Mapped[int] = mapped_column(Integer)
    box_w: Mapped[int] = mapped_column(Integer)
    box_h: Mapped[int] = mapped_column(Integer)
    jsn: Mapped[int | None] = mapped_column(Integer)  #: None when not assessable
    erosion: Mapped[int | None] = mapped_column(Integer)
    assessable: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: why the joint is not assessable, e.g. "model unsure"; "" when it is
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    jsn_probs: Mapped[dict[str, Any]] = mapped_column()  #: {"p": [5 floats]}
    erosion_probs: Mapped[dict[str, Any]] = mapped_column()  #: {"p": [6 floats]}
    found_by: Mapped[str] = mapped_column(String(16), default="")

    image_score: Mapped[ImageScoreRow] = relationship(back_populates="joints")


class ResultObject(Base):
    """A DICOM object the node made: the SR, the overlay SC or the GSPS of a job."""

    __tablename__ = "result_objects"
    __table_args__ = (UniqueConstraint("job_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the job of a per-image object; None for a study SR (``study_report_id``)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    #: the report of a study object: its study SR and its study overlay SCs (one per image)
    study_report_id: Mapped[int | None] = mapped_column(ForeignKey("study_reports.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  #: sr | sc | gsps | study | study-sc
    sop_class_uid: Mapped[str] = mapped_column(UID)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    store_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    job: Mapped[Job | None] = relationship(back_populates="results")
    study_report: Mapped[StudyReport | None] = relationship()
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="result")


class Delivery(Base):
    """One result object to one destination: the outbox."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("result_id", "destination"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("result_objects.id"), index=True)
    destination: Mapped[str] = mapped_column(String(128))  #: AET@host:port
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: last put on the broker (the sweeper does not queue it again while that is recent)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column()
    #: set while a send task holds the delivery; a stale claim (dead worker) expires
    claimed_at: Mapped[dt.datetime | None] = mapped_column()
    last_status: Mapped[str] = mapped_column(String(8), default="")  #: DIMSE status, hex
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[dt.datetime | None] = mapped_column()

    result: Mapped[ResultObject] = relationship(back_populates="deliveries")


class AuditEvent(Base):
    """Append-only: every event a later question can be about."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(24), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)  #: AE title, worker, token name
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditEventType(enum.StrEnum):
    RECEIVED = "received"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    QUEUED = "queued"
    SCORED = "scored"
    BUILT = "built"
    SENT = "sent"
    SEND_FAILED = "send_failed"
    FAILED = "failed"
    REQUEUED = "requeued"
    RESEND = "resend"
    QUERIED = "queried"
    #: a study's Patient ID or Name changed (a merge in the PACS); detail holds old and new
    PATIENT_CHANGED = "patient_changed"
    #: a study's report (version n) was made from its scored images; detail says which
    STUDY_ASSEMBLED = "study_assembled"


class TokenRole(enum.StrEnum):
    READ = "read"  #: queries, exports, the dashboard
    OPERATOR = "operator"  #: and resend, rescore


class ApiToken(Base):
    """A bearer token of the HTTP API; only its SHA-256 is kept (tokens are 256 random bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[TokenRole] = mapped_column(_enum(TokenRole))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class DashboardSession(Base):
    """A browser's login to the dashboard. The cookie holds a random secret and this row its
    SHA-256, so a copy of the database opens no session; the row ends the session at logout
    (``revoked_at``), after an idle time (``last_seen_at``), at ``expires_at``, and with its
    token."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  #: SHA-256 of the secret
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    token_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[TokenRole] = mapped_column(_enum(TokenRole))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: last request seen (written at most once a minute or so: reads stay read-only)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()

"""The node's C-STORE handler: file the spooled image, record it, decide, queue its job.

Success goes back to the sender only after the image is in the store and its rows are
committed; if either fails for a reason that may pass (disk, database down, a lock) the sender
gets 0xA700 (out of resources) and may send again, and nothing half-done stays behind. A
database that refuses the data set for good (a value it cannot store, a constraint) gives
0xC000 with a one-line reason: a PACS retries 0xA700 forever. Text from the header is cleaned
first (PostgreSQL refuses NUL in text; control characters have no place in these fields).

A resent image (same SOP Instance UID and content hash) is recorded as another reception of
the same instance and is not scored again by the same model version. The broker is told last:
if it is down the job stays ``queued`` with no ``enqueued_at``, and the node's sweeper queues it
when the broker is back.

An image of a known study that names another patient (a merge in the PACS) updates the study's
Patient ID and Name, with a ``patient_changed`` audit event holding the old and new values.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from dicom_io.net import CannotUnderstand, OutOfResources, ReceivedInstance
from dicom_io.reading import (
    MAX_PIXELS,
    MAX_SIDE,
    CorruptImage,
    ImageTooLarge,
    ImplausibleSpacing,
    check_bounds,
)
from worker import metrics
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    AuditEventType,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    Reception,
    Study,
    utcnow,
)
from worker.model_ref import ModelRef
from worker.node.routing import Route, route
from worker.node.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filed:
    """What the receiver did with one C-STORE."""

    instance_id: int
    status: InstanceStatus
    duplicate: bool
    job_id: int | None  #: a new job to queue, if any
    store_key: str  #: where the instance's file is on record


#: C0 and C1 controls (NUL included) and lone surrogates: no database text column wants them
_UNWANTED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(value: str, limit: int) -> str:
    """Text as the database can keep it: no control characters, no NUL, at most ``limit``."""
    return _UNWANTED.sub("", value).strip()[:limit]


def _text(ds: Dataset, keyword: str, limit: int) -> str:
    return clean(str(ds.get(keyword, "") or ""), limit)


def permanent_refusal(exc: SQLAlchemyError) -> str | None:
    """Why the database will never take this data set, in one line without patient data; None
    when the error may pass (connection, lock, disk full: the sender should try again)."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    where = f" (SQLSTATE {code})" if code else ""
    if isinstance(exc, DataError):
        return f"the database cannot store a value of this data set's header{where}"
    if isinstance(exc, IntegrityError):
        return f"the database refuses this data set by one of its constraints{where}"
    return None


#: header values longer than this are not read (a hostile 200 MB private element is skipped)
HEADER_VALUE_LIMIT = 64 * 1024


def _small_header(path: Path) -> Dataset:
    """The header without Pixel Data and without any value over :data:`HEADER_VALUE_LIMIT`
    bytes: what the receiver needs fits in a few kilobytes, and reading more would let one
    data set take the node's memory. A value left out reads as absent."""
    header = pydicom.dcmread(path, stop_before_pixels=True, defer_size=HEADER_VALUE_LIMIT)
    for tag in list(header.keys()):
        raw = header.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length > 0:
            del header[tag]  # deferred: it would be read from a file that is about to move
    return header


def _refuse_bombs(received: ReceivedInstance) -> None:
    """A data set whose pixels would decode beyond the reader's bounds (a JPEG 2000 codestream
    of 16000² behind a header of 100²) or whose pixel spacing makes it metres wide is refused
    now, while the sender can be told; any other image that cannot be read is accepted and
    fails with its reason when it is scored."""
    try:
        check_bounds(received.path)
    except (ImageTooLarge, CorruptImage) as exc:
        log.warning(
            "refused a decompression bomb",
            extra={"sop_instance_uid": received.sop_instance_uid, "reason": str(exc)},
        )
        if isinstance(exc, ImplausibleSpacing):
            raise CannotUnderstand("implausible pixel spacing: over 2 mm a pixel") from exc
        if isinstance(exc, ImageTooLarge):
            raise CannotUnderstand(
                f"image too large: beyond {MAX_SIDE} pixels a side or {MAX_PIXELS // 10**6} MP"
            ) from exc
        raise CannotUnderstand("compressed frame disagrees with Rows/Columns") from exc
    except Exception:  # anything else is for the reader to say, when the image is scored
        return


def _study_date(ds: Dataset) -> dt.date | None:
    try:
        return dt.datetime.strptime(str(ds.get("StudyDate", "") or ""), "%Y%m%d").date()
    except ValueError:
        return None


class Receiver:
    """A :data:`dicom_io.net.StoreHandler` for the node; thread-safe (a session per call)."""

    def __init__(
        self,
        database_url: str,
        store: Store,
        model: ModelRef,
        hand_keywords: list[str],
        enqueue: Callable[[int], bool],
    ) -> None:
        self.database_url = database_url
        self.store = store
        self.model = model
        self.hand_keywords = hand_keywords
        self.enqueue = enqueue
        #: called before each new job: brings ``model`` up to date (the node's active model)
        self.follow_model: Callable[[], None] = lambda: None

    def __call__(self, received: ReceivedInstance) -> int:
        try:
            header = _small_header(received.path)
        except Exception as exc:  # the SCP checked it parses; be safe anyway
            raise CannotUnderstand("data set does not parse") from exc
        for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            # the results must reference these: a UID that is not one is refused now, while the
            # sender can still be told, rather than failing later where nobody sees it
            if not UID(str(header.get(keyword, "") or "")).is_valid:
                raise CannotUnderstand(f"{keyword} is missing or not a valid UID")
        _refuse_bombs(received)
        key = Store.new_image_key(received.received_at)
        try:
            self.store.file_image(received.path, key)
        except OSError as exc:
            log.error("cannot file image in store", extra={"error": str(exc)})
            raise OutOfResources("cannot write to the store") from exc
        try:
            filed = self._record(received, header, key)
        except SQLAlchemyError as exc:
            log.error("cannot record image", extra={"error": str(exc).splitlines()[0][:300]})
            self.store.remove(key)
            refusal = permanent_refusal(exc)
            if refusal is not None:
                raise CannotUnderstand(refusal) from exc
            raise OutOfResources("database unavailable") from exc
        metrics.RECEIVED.labels("duplicate" if filed.duplicate else "new").inc()
        if filed.duplicate:
            if self.store.path(filed.store_key).exists():
                self.store.remove(key)  # the first copy is the one on record
            else:  # e.g. its first C-STORE was answered 0xA700 after a commit that did land
                self.store.file_image(self.store.path(key), filed.store_key)
        elif filed.status == InstanceStatus.SKIPPED:
            metrics.SKIPPED.inc()
        if filed.job_id is not None:
            try:
                self.enqueue(filed.job_id)
            except Exception as exc:  # filed and committed: the sweeper queues it later
                log.warning(
                    "could not queue job", extra={"job_id": filed.job_id, "error": str(exc)}
                )
        log.info(
            "received",
            extra={
                "instance_id": filed.instance_id,
                "status": filed.status.value,
                "duplicate": filed.duplicate,
                "calling_ae": received.calling_ae_title,
            },
        )
        return 0x0000

    def _record(self, received: ReceivedInstance, header: Dataset, key: str) -> Filed:
        for attempt in range(3):  # concurrent associations may create the same study at once
            try:
                with session_scope(self.database_url) as session:
                    return self._record_in(session, received, header, key)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _record_in(
        self, session: Session, received: ReceivedInstance, header: Dataset, key: str
    ) -> Filed:
        study, patient_change = self._study(session, header)
        decision = route(header, self.hand_keywords)
        instance, duplicate = self._instance(session, received, header, key, study, decision)
        if patient_change is not None:
            self._patient_changed(session, received, study, instance, patient_change)
        self._audit_arrival(session, received, instance, duplicate)
        job_id = None
        if not decision.score:
            if not duplicate:
                session.add(
                    AuditEvent(
                        event=AuditEventType.SKIPPED,
                        actor="router",
                        instance_id=instance.id,
                        detail={"reason": decision.reason},
                    )
                )
        else:
            job_id = self._new_job(session, instance)
        return Filed(instance.id, instance.status, duplicate, job_id, instance.store_key)

    @staticmethod
    def _instance(
        session: Session,
        received: ReceivedInstance,
        header: Dataset,
        key: str,
        study: Study,
        decision: Route,
    ) -> tuple[Instance, bool]:
        """The instance row, found (the same SOP instance UID and content: a duplicate) or
        made."""
        instance = session.scalar(
            select(Instance).where(
                Instance.sop_instance_uid == received.sop_instance_uid,
                Instance.sha256 == received.sha256,
            )
        )
        if instance is not None:
            if study.last_image_at is None:  # filed before studies were assembled
                study.last_image_at = utcnow()
            return instance, True
        study.last_image_at = utcnow()  # re-opens the study (worker.jobs.study)
        instance = Instance(
            study=study,
            series_instance_uid=_text(header, "SeriesInstanceUID", 64),
            sop_instance_uid=received.sop_instance_uid,
            sop_class_uid=clean(received.sop_class_uid, 64),
            sha256=received.sha256,
            transfer_syntax=clean(received.transfer_syntax, 64),
            size=received.size,
            modality=_text(header, "Modality", 16),
            body_part=_text(header, "BodyPartExamined", 64),
            laterality=_text(header, "ImageLaterality", 4) or _text(header, "Laterality", 4),
            store_key=key,
            status=InstanceStatus.QUEUED if decision.score else InstanceStatus.SKIPPED,
            reason="" if decision.score else decision.reason,
            received_at=received.received_at,
        )
        session.add(instance)
        session.flush()
        return instance, False

    @staticmethod
    def _patient_changed(
        session: Session,
        received: ReceivedInstance,
        study: Study,
        instance: Instance,
        change: dict[str, Any],
    ) -> None:
        session.add(
            AuditEvent(
                event=AuditEventType.PATIENT_CHANGED,
                actor=clean(received.calling_ae_title, 16),
                instance_id=instance.id,
                detail=change,
            )
        )
        # the identities are in the audit trail; the log says only that it happened
        log.info(
            "study's patient changed (merge in the sender?)",
            extra={"study_id": study.id, "instance_id": instance.id},
        )

    @staticmethod
    def _audit_arrival(
        session: Session, received: ReceivedInstance, instance: Instance, duplicate: bool
    ) -> None:
        """The reception (who sent it, from where) and its audit event."""
        session.add(
            Reception(
                instance_id=instance.id,
                calling_ae_title=clean(received.calling_ae_title, 16),
                calling_host=clean(received.calling_host, 64),
                called_ae_title=clean(received.called_ae_title, 16),
                received_at=received.received_at,
                duplicate=duplicate,
            )
        )
        actor = clean(received.calling_ae_title, 16)
        detail = {"sop_instance_uid": received.sop_instance_uid, "host": received.calling_host}
        event = AuditEventType.DUPLICATE if duplicate else AuditEventType.RECEIVED
        session.add(AuditEvent(event=event, actor=actor, instance_id=instance.id, detail=detail))

    def _new_job(self, session: Session, instance: Instance) -> int | None:
        """A queued scoring job for this node's model, unless the instance has one already."""
        self.follow_model()
        model = self.model  # one read: ``rascore model activate`` may switch it
        existing = session.scalar(
            select(Job).where(Job.instance_id == instance.id, Job.model_version == model.version)
        )
        if existing is not None:
            return None
        job = Job(
            instance_id=instance.id,
            model_name=model.name,
            model_version=model.version,
            status=JobStatus.QUEUED,
            enqueued_at=utcnow(),  # published right after the commit (cleared if that fails)
        )
        session.add(job)
        instance.status = InstanceStatus.QUEUED
        session.flush()
        session.add(
            AuditEvent(
                event=AuditEventType.QUEUED,
                actor="router",
                instance_id=instance.id,
                detail={"job_id": job.id, "model_version": model.version},
            )
        )
        return job.id

    @staticmethod
    def _study(session: Session, header: Dataset) -> tuple[Study, dict[str, Any] | None]:
        """The study row, made or found; and, when a known study's image names another
        patient (a merge in the PACS), the row updated and the change for the audit trail."""
        uid = _text(header, "StudyInstanceUID", 64)
        patient_id = _text(header, "PatientID", 64)
        patient_name = _text(header, "PatientName", 324)
        study = session.scalar(select(Study).where(Study.study_instance_uid == uid))
        if study is None:
            study = Study(
                study_instance_uid=uid,
                patient_id=patient_id,
                patient_name=patient_name,
                accession_number=_text(header, "AccessionNumber", 16),
                study_date=_study_date(header),
                issuer_of_patient_id=_text(header, "IssuerOfPatientID", 64),
            )
            session.add(study)
            session.flush()
            return study, None
        # an image without a Patient ID (de-identified, or a broken sender) is no merge
        if not patient_id or (study.patient_id, study.patient_name) == (patient_id, patient_name):
            return study, None
        change = {
            "study_instance_uid": uid,
            "old": {"patient_id": study.patient_id, "patient_name": study.patient_name},
            "new": {"patient_id": patient_id, "patient_name": patient_name},
        }
        study.patient_id, study.patient_name = patient_id, patient_name
        return study, change

"""Query/retrieve SCU: find a patient's earlier hand studies in the PACS and move them here.

Both time points of a progression must be scored by the same model, so the node fetches a
patient's prior studies and scores them itself rather than trusting old results.

Retrieval is by C-MOVE, not C-GET. A C-MOVE makes the PACS send the study to the node's own AE
as ordinary C-STOREs, so a prior goes through the same SCP, admission limits, spool, routing,
de-duplication and audit trail as every other image: there is one way in. The price is that the
PACS must know the node's AE title, host and port (Orthanc: ``DicomModalities``), which it
already does when it sends the node new images. A C-GET would need the SCP role negotiated per
storage SOP class on the query association and a second path into the store.

:func:`find_studies` asks at STUDY level (Study Root) for the patient's studies in a date range,
then at SERIES level for what each study holds, and keeps the hand studies by the routing rule:
a study is a hand study when a describing field (Study or Series Description, Body Part
Examined, Protocol Name) of its CR or DX series names a hand by one of the given words; a study
whose fields are all empty says nothing and is kept (the detector decides, as for received
images); one whose fields name something else (CHEST) is not.

A PACS that is down, refuses the association, aborts it or does not answer in time raises
:class:`PeerUnavailable`; one that answers a query with a failure status raises
:class:`QueryFailed`. Both carry a one-line reason. A C-MOVE that the PACS answered, even with
a failure, is a :class:`MoveResult` with its counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import build_context
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.status import code_to_category

from dicom_io.net.peers import Destination, associate, check_ae_title, new_ae

__all__ = [
    "MoveResult",
    "PeerUnavailable",
    "QueryFailed",
    "QueryRetrieveError",
    "StudyMatch",
    "find_studies",
    "move_study",
]

logger = logging.getLogger(__name__)

_PENDING = (0xFF00, 0xFF01)
_DESCRIBING = ("BodyPartExamined", "ProtocolName", "SeriesDescription")


class QueryRetrieveError(Exception):
    """A query or retrieval that did not happen; ``str()`` is one line saying why."""

    def __init__(self, peer: Destination, reason: str) -> None:
        super().__init__(f"{peer}: {reason}")
        self.peer = peer
        self.reason = reason


class PeerUnavailable(QueryRetrieveError):
    """No answer: connection refused, association rejected or aborted, time-out."""


class QueryFailed(QueryRetrieveError):
    """The PACS answered the C-FIND with a failure status."""


@dataclass(frozen=True)
class StudyMatch:
    """One of the patient's hand studies in the PACS."""

    study_instance_uid: str
    study_date: dt.date | None
    modalities: tuple[str, ...]  #: of its series (CR, DX, ...)
    description: str  #: Study Description
    body_parts: tuple[str, ...]  #: Body Part Examined of its series
    series: int  #: how many series it has
    reason: str  #: which field said hand, or that none said anything


@dataclass(frozen=True)
class MoveResult:
    """The final answer to a C-MOVE of one study, with its sub-operation counts."""

    study_instance_uid: str
    destination_aet: str
    status: int
    completed: int
    failed: int
    warning: int
    error: str = ""  #: the PACS's Error Comment or the status's meaning when not a success

    @property
    def ok(self) -> bool:
        """Every sub-operation reached the destination (success, or warnings only)."""
        return code_to_category(self.status) in ("Success", "Warning") and self.failed == 0


def _peer(peer: str | Destination) -> Destination:
    return peer if isinstance(peer, Destination) else Destination.parse(peer)


@contextmanager
def _association(
    peer: Destination, model: str, calling_ae: str, timeout: float
) -> Iterator[Association]:
    ae = new_ae(calling_ae, timeout)
    assoc, why = associate(ae, peer, [build_context(model)], None, timeout)
    if assoc is None:
        raise PeerUnavailable(peer, why or "no association")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _date_range(since: dt.date | None, until: dt.date | None) -> str:
    if since is None and until is None:
        return ""
    first = since.strftime("%Y%m%d") if since else ""
    last = until.strftime("%Y%m%d") if until else ""
    return f"{first}-{last}"


def _find(assoc: Association, peer: Destination, query: Dataset, model: str) -> list[Dataset]:
    """Every matching identifier; raises when the PACS fails the query or stops answering."""
    found: list[Dataset] = []
    for status, identifier in assoc.send_c_find(query, model):
        if "Status" not in status:
            raise PeerUnavailable(peer, "no C-FIND response (association aborted or time-out)")
        code = int(status.Status)
        if code in _PENDING:
            if identifier is not None:
                found.append(identifier)
            continue
        if code_to_category(code) not in ("Success", "Warning"):
            comment = status.get("ErrorComment", "")
            raise QueryFailed(
                peer, f"C-FIND answered 0x{code:04X}" + (f": {comment}" if comment else "")
            )
        return found
    raise PeerUnavailable(peer, "C-FIND ended without a final response")


def _study_query(patient_id: str, dates: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = patient_id
    ds.StudyDate = dates
    ds.StudyInstanceUID = ""
    ds.ModalitiesInStudy = ""
    ds.StudyDescription = ""
    ds.NumberOfStudyRelatedSeries = ""
    return ds


def _series_query(study_uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = ""
    ds.Modality = ""
    for keyword in _DESCRIBING:
        setattr(ds, keyword, "")
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if not isinstance(value, str | bytes) and hasattr(value, "__iter__"):
        value = " ".join(str(v) for v in value)
    return " ".join(str(value).split()).upper()


def _values(ds: Dataset, keyword: str) -> list[str]:
    return [v for v in _text(ds, keyword).split() if v]


def _parse_date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _hand_reason(
    description: str, series: list[Dataset], patterns: list[re.Pattern[str]]
) -> str | None:
    """Why the study is a hand study (the routing rule), or None when it is not."""
    fields = [("StudyDescription", description)] + [
        (keyword, _text(s, keyword)) for s in series for keyword in _DESCRIBING
    ]
    for keyword, value in fields:
        if value and any(p.search(value) for p in patterns):
            return f"{keyword} says hand"
    if not any(value for _, value in fields):
        return "no describing field says what was imaged"
    return None


def _match(
    study: Dataset,
    series: list[Dataset],
    modalities: Sequence[str],
    patterns: list[re.Pattern[str]],
) -> StudyMatch | None:
    """The study as a :class:`StudyMatch` when it is a hand study of the wanted modalities."""
    wanted = {m.upper() for m in modalities}
    imaging = [s for s in series if _text(s, "Modality") in wanted]
    found = set(_values(study, "ModalitiesInStudy")) | {_text(s, "Modality") for s in series}
    found.discard("")
    if not (found & wanted):
        return None
    description = _text(study, "StudyDescription")
    reason = _hand_reason(description, imaging if series else [], patterns)
    if reason is None:
        return None
    return StudyMatch(
        study_instance_uid=str(study.get("StudyInstanceUID", "")).strip(),
        study_date=_parse_date(str(study.get("StudyDate", "") or "")),
        modalities=tuple(sorted(found)),
        description=str(study.get("StudyDescription", "") or ""),
        body_parts=tuple(sorted({_text(s, "BodyPartExamined") for s in imaging} - {""})),
        series=len(series),
        reason=reason,
    )


def find_studies(
    peer: str | Destination,
    patient_id: str,
    since: dt.date | None,
    until: dt.date | None = None,
    *,
    modalities: Sequence[str] = ("CR", "DX"),
    words: Sequence[str] = ("HAND",),
    calling_ae: str = "RASCORE",
    timeout: float = 30,
) -> list[StudyMatch]:
    """The patient's hand studies dated ``since``–``until`` (inclusive), oldest first.

    An empty ``patient_id`` raises ValueError: it would match every patient's studies.
    """
    dest = _peer(peer)
    if not patient_id.strip():
        raise ValueError("patient ID is empty: a query would match every patient")
    check_ae_title(calling_ae, "calling AE title")
    patterns = [re.compile(rf"(?<![A-Z]){re.escape(w.upper())}(?![A-Z])") for w in words if w]
    model = StudyRootQueryRetrieveInformationModelFind
    matches: list[StudyMatch] = []
    with _association(dest, model, calling_ae, timeout) as assoc:
        studies = _find(assoc, dest, _study_query(patient_id, _date_range(since, until)), model)
        for study in studies:
            uid = str(study.get("StudyInstanceUID", "")).strip()
            if not uid or str(study.get("PatientID", patient_id)).strip() != patient_id.strip():
                continue  # a PACS that matched loosely (wildcards, case) is not trusted
            series = _find(assoc, dest, _series_query(uid), model)
            match = _match(study, series, modalities, patterns)
            if match is not None:
                matches.append(match)
    logger.info(
        "C-FIND at %s: %d studies, %d hand studies",
        dest,
        len(studies),
        len(matches),
        extra={"event": "dicom.find", "peer": str(dest), "studies": len(studies)},
    )
    return sorted(matches, key=lambda m: (m.study_date or dt.date.min, m.study_instance_uid))


def move_study(
    peer: str | Destination,
    study_uid: str,
    destination_aet: str,
    *,
    calling_ae: str = "RASCORE",
    timeout: float = 120,
) -> MoveResult:
    """C-MOVE one study from ``peer`` to the AE ``destination_aet``.

    ``timeout`` bounds the wait for each response (the PACS sends one per sub-operation or at
    the end), not the whole transfer. Raises :class:`PeerUnavailable` when there is no
    association or no final response.
    """
    dest = _peer(peer)
    move_aet = check_ae_title(destination_aet, "move destination AE title")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    model = StudyRootQueryRetrieveInformationModelMove
    counts = {"completed": 0, "failed": 0, "warning": 0}
    with _association(dest, model, calling_ae, timeout) as assoc:
        for status, _identifier in assoc.send_c_move(query, move_aet, model):
            if "Status" not in status:
                raise PeerUnavailable(dest, "no C-MOVE response (association aborted or time-out)")
            for key in counts:
                value = status.get(f"NumberOf{key.title()}Suboperations")
                if value is not None and value != "":
                    counts[key] = int(value)
            code = int(status.Status)
            if code in _PENDING:
                continue
            category = code_to_category(code)
            error = ""
            if category != "Success":
                error = str(status.get("ErrorComment", "") or f"{category.lower()} 0x{code:04X}")
            result = MoveResult(study_uid, move_aet, code, **counts, error=error)
            logger.log(
                logging.INFO if result.ok else logging.WARNING,
                "C-MOVE from %s to %s: status 0x%04X, %d completed, %d failed",
                dest,
                move_aet,
                code,
                result.completed,
                result.failed,
                extra={"event": "dicom.move", "peer": str(dest), "study_instance_uid": study_uid},
            )
            return result
    raise PeerUnavailable(dest, "C-MOVE ended without a final response")

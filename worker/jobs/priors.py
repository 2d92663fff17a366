"""A new study's prior studies, fetched from the PACS so that the same model scores both.

:func:`request_priors` is called by the study assembly before it assembles a study, as often as
it likes: it asks the PACS (``RASCORE_QR_PEER``) once, by C-FIND, for the patient's hand studies
of the last ``RASCORE_PRIORS_YEARS`` years, and moves each one the node does not hold (by Study
Instance UID) to the node's own AE (``RASCORE_AE_TITLE``) by C-MOVE. The images arrive at the
SCP as ordinary C-STOREs and are filed, routed and scored like any other.

The state lives in the audit trail, which records every query and retrieval anyway (and is
append-only, so it is never lost or rewritten): a ``prior_query`` event with outcome ``ok`` for a
study means its priors were asked for, and lists those to fetch; ``prior_retrieve`` events say
what each C-MOVE did. No table or column is needed, so no migration. Each event's detail names
the studies by UID and the peer, never the patient.

A study that is itself a retrieved prior asks for nothing (its successor already fetched its
older siblings). A PACS that is down delays the study (False) and never fails it; a retrieval
that fails ``MAX_RETRIEVE_ATTEMPTS`` times is given up, so a study never waits forever for a
prior the PACS cannot send. A study without a Patient ID asks for nothing: a query would match
every patient.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_io.net.peers import Destination
from dicom_io.net.qr import MoveResult, QueryRetrieveError, find_studies, move_study
from worker.db.engine import read_session_scope, session_scope
from worker.db.models import AuditEvent, Study, utcnow
from worker.settings import Settings

__all__ = [
    "MAX_RETRIEVE_ATTEMPTS",
    "PRIOR_QUERY",
    "PRIOR_RETRIEVE",
    "is_retrieved_prior",
    "request_priors",
]

log = logging.getLogger(__name__)

PRIOR_QUERY = "prior_query"
PRIOR_RETRIEVE = "prior_retrieve"
ACTOR = "priors"
#: C-MOVEs of one prior that failed before it is given up (recorded as ``gave_up``)
MAX_RETRIEVE_ATTEMPTS = 5
#: a C-MOVE that succeeded but whose study the node still does not hold is tried again after
#: this long (the PACS sent nothing the node filed, e.g. only objects it refused)
IN_FLIGHT_S = 600.0


@dataclass
class _State:
    """What the database says of one study's priors."""

    study_uid: str
    patient_id: str
    study_date: dt.date | None
    is_prior: bool
    query: dict[str, Any] | None  #: detail of the latest successful query
    last_failed_query: dt.datetime | None
    retrieves: dict[str, list[tuple[dt.datetime, dict[str, Any]]]] = field(default_factory=dict)


def _detail_is(key: str, value: str) -> Any:
    return AuditEvent.detail[key].as_string() == value


def is_retrieved_prior(session: Session, study_uid: str) -> bool:
    """Whether the node fetched this study from the PACS as another study's prior."""
    found = session.scalar(
        select(AuditEvent.id)
        .where(
            AuditEvent.event == PRIOR_RETRIEVE, _detail_is("prior_study_instance_uid", study_uid)
        )
        .limit(1)
    )
    return found is not None


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)  # SQLite drops the zone


def _load(settings: Settings, study_id: int) -> _State | None:
    with read_session_scope(settings.effective_database_url) as session:
        study = session.get(Study, study_id)
        if study is None:
            return None
        uid = study.study_instance_uid
        state = _State(uid, study.patient_id, study.study_date, False, None, None)
        state.is_prior = is_retrieved_prior(session, uid)
        events = session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.event.in_((PRIOR_QUERY, PRIOR_RETRIEVE)),
                _detail_is("study_instance_uid", uid),
            )
            .order_by(AuditEvent.id)
        ).all()
        for event in events:
            detail, at = dict(event.detail), _aware(event.at)
            if event.event == PRIOR_QUERY and detail.get("outcome") in ("ok", "skipped"):
                state.query = detail
            elif event.event == PRIOR_QUERY:
                state.last_failed_query = at
            elif detail.get("outcome") != "moving":  # an attempt's start: its end follows
                prior = str(detail.get("prior_study_instance_uid", ""))
                state.retrieves.setdefault(prior, []).append((at, detail))
        return state


def _stored(settings: Settings, uids: Sequence[str]) -> set[str]:
    if not uids:
        return set()
    with read_session_scope(settings.effective_database_url) as session:
        rows = session.scalars(
            select(Study.study_instance_uid).where(Study.study_instance_uid.in_(list(uids)))
        )
        return set(rows)


def _record(settings: Settings, event: str, detail: dict[str, Any]) -> dict[str, Any]:
    with session_scope(settings.effective_database_url) as session:
        session.add(AuditEvent(event=event, actor=ACTOR, detail=detail))
    return detail


def _query(settings: Settings, peer: Destination, state: _State) -> dict[str, Any] | None:
    """Ask the PACS for the patient's hand studies; the recorded detail, or None on failure."""
    until = state.study_date or utcnow().date()
    since = _years_before(until, settings.priors_years)
    detail: dict[str, Any] = {
        "study_instance_uid": state.study_uid,
        "peer": str(peer),
        "since": since.isoformat(),
        "until": until.isoformat(),
    }
    if not state.patient_id.strip():
        return _record(
            settings,
            PRIOR_QUERY,
            {
                **detail,
                "outcome": "skipped",
                "found": [],
                "to_fetch": [],
                "reason": "no Patient ID",
            },
        )
    try:
        matches = find_studies(
            peer,
            state.patient_id,
            since,
            until,
            words=settings.hand_keyword_list,
            calling_ae=settings.ae_title,
        )
    except QueryRetrieveError as exc:
        log.warning("prior query failed: %s", exc, extra={"event": "priors.query_failed"})
        _record(settings, PRIOR_QUERY, {**detail, "outcome": "failed", "error": exc.reason})
        return None
    found = [m.study_instance_uid for m in matches if m.study_instance_uid != state.study_uid]
    held = _stored(settings, found)
    to_fetch = [uid for uid in found if uid not in held]
    log.info(
        "priors of study %s: %d found, %d to fetch",
        state.study_uid,
        len(found),
        len(to_fetch),
        extra={"event": "priors.queried", "study_instance_uid": state.study_uid},
    )
    return _record(
        settings, PRIOR_QUERY, {**detail, "outcome": "ok", "found": found, "to_fetch": to_fetch}
    )


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _retrieve(
    settings: Settings, peer: Destination, state: _State, prior: str
) -> MoveResult | None:
    """One C-MOVE of ``prior`` to the node, recorded; None when the PACS did not answer."""
    detail: dict[str, Any] = {
        "study_instance_uid": state.study_uid,
        "prior_study_instance_uid": prior,
        "peer": str(peer),
        "destination": settings.ae_title,
    }
    # recorded before the move: its images may be scored and built before the move returns,
    # and is_retrieved_prior must already know them then (their results stay home)
    _record(settings, PRIOR_RETRIEVE, {**detail, "outcome": "moving"})
    try:
        result = move_study(peer, prior, settings.ae_title, calling_ae=settings.ae_title)
    except QueryRetrieveError as exc:
        log.warning("prior retrieval failed: %s", exc, extra={"event": "priors.move_failed"})
        _record(settings, PRIOR_RETRIEVE, {**detail, "outcome": "failed", "error": exc.reason})
        return None
    _record(
        settings,
        PRIOR_RETRIEVE,
        {
            **detail,
            "outcome": "ok" if result.ok else "failed",
            "status": f"0x{result.status:04X}",
            "completed": result.completed,
            "failed": result.failed,
            "warning": result.warning,
            "error": result.error,
        },
    )
    return result


def _settled_without_move(
    settings: Settings, state: _State, prior: str, now: dt.datetime
) -> bool | None:
    """True: nothing more to do for ``prior``; False: wait; None: move it now."""
    history = state.retrieves.get(prior, [])
    if not history:
        return None
    at, last = history[-1]
    if last.get("outcome") == "gave_up":
        return True
    if last.get("outcome") == "ok":
        if int(last.get("completed", 0)) == 0:
            return True  # the PACS holds nothing of it any more
        if (now - at).total_seconds() < IN_FLIGHT_S:
            return False
    elif (now - at).total_seconds() < settings.priors_retry_s:
        return False
    if len(history) >= MAX_RETRIEVE_ATTEMPTS:
        _record(
            settings,
            PRIOR_RETRIEVE,
            {
                "study_instance_uid": state.study_uid,
                "prior_study_instance_uid": prior,
                "peer": settings.qr_peer.strip(),
                "outcome": "gave_up",
                "attempts": len(history),
            },
        )
        log.warning(
            "gave up retrieving a prior of study %s after %d attempts",
            state.study_uid,
            len(history),
            extra={"event": "priors.gave_up", "prior_study_instance_uid": prior},
        )
        return True
    return None


def request_priors(settings: Settings, study_id: int) -> bool:
    """Ask for and fetch the priors of study ``study_id``; True once they are settled.

    Settled: no PACS configured, no Patient ID, this study is itself a prior, or every prior
    found is held by the node (filed; its scoring is the job pipeline's), held nothing, or was
    given up. False: the query or a retrieval failed (PACS down: try again later, no sooner
    than ``RASCORE_PRIORS_RETRY_S``) or a retrieved prior is not filed yet. Raises only for a
    malformed ``RASCORE_QR_PEER``, a configuration error; an unknown study is settled.
    """
    if not settings.qr_peer.strip():
        return True
    peer = Destination.parse(settings.qr_peer)
    state = _load(settings, study_id)
    if state is None or state.is_prior:
        return True
    now = utcnow()
    query = state.query
    if query is None:
        last = state.last_failed_query
        if last is not None and (now - last).total_seconds() < settings.priors_retry_s:
            return False
        query = _query(settings, peer, state)
        if query is None:
            return False
    wanted = [str(uid) for uid in query.get("to_fetch", [])]
    held = _stored(settings, wanted)
    settled = True
    for prior in wanted:
        history = state.retrieves.get(prior, [])
        if prior in held and (not history or history[-1][1].get("outcome") != "failed"):
            continue  # a partial retrieval is tried again (what arrived is de-duplicated)
        decision = _settled_without_move(settings, state, prior, now)
        if decision is None:
            result = _retrieve(settings, peer, state, prior)
            if result is None:
                return False  # the PACS is not answering: the rest can wait too
            decision = result.ok and (result.completed == 0 or prior in _stored(settings, [prior]))
        settled = settled and decision
    return settled

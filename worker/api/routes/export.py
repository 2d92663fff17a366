"""``/api/v1/export/*.csv``: scores, progression and the audit trail as CSV, streamed page by
page, each page a keyset query in its own short read (nothing is held in memory or locked
between)."""

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from worker.api.deps import AuditWhere, Filter, Reader, Url, audit_query
from worker.api.timeline import progression_page
from worker.db import queries
from worker.db.engine import read_session_scope

router = APIRouter(prefix="/api/v1/export", tags=["export"])


@router.get("/scores.csv", response_class=StreamingResponse)
def export_scores(who: Reader, where: Filter, url: Url) -> StreamingResponse:
    """One row per scored joint of the instances that match, newest score first."""
    audit_query(url, who.name, "export scores", where.as_dict())  # before anything is read
    pages = _pages(url, lambda s, after: queries.export_scores_page(s, where, after))
    return _csv(SCORE_COLUMNS, (_score_rows(page) for page in pages), "rascore-scores.csv")


@router.get("/audit.csv", response_class=StreamingResponse)
def export_audit(who: Reader, where: AuditWhere, url: Url) -> StreamingResponse:
    audit_query(url, who.name, "export audit", where.as_dict())
    pages = _pages(url, lambda s, after: queries.export_audit_page(s, where, after))
    return _csv(AUDIT_COLUMNS, (_audit_rows(page) for page in pages), "rascore-audit.csv")


@router.get("/progression.csv", response_class=StreamingResponse)
def export_progression(who: Reader, url: Url, since: dt.date | None = None) -> StreamingResponse:
    """One row per assessed study per patient (Study Date order), with its newest report's
    totals and the change and rate per year since the previous and the first study;
    ``since``: studies dated on or after it."""
    audit_query(url, who.name, "export progression", {"since": since and since.isoformat()})

    def pages() -> Iterator[Iterator[list[Any]]]:
        after: tuple[str, str] | None = None
        while True:
            with read_session_scope(url) as session:
                page = progression_page(session, since, after)
            if not page:
                return
            yield _progression_rows(page)
            after = (page[-1]["issuer_of_patient_id"], page[-1]["patient_id"])

    return _csv(PROGRESSION_COLUMNS, pages(), "rascore-progression.csv")


def _pages(
    url: str, read: Callable[[Session, int | None], list[dict[str, Any]]]
) -> Iterator[list[dict[str, Any]]]:
    """Keyset pages, each in its own short read-only session (no lock held between)."""
    after: int | None = None
    while True:
        with read_session_scope(url) as session:
            page = read(session, after)
        if not page:
            return
        yield page
        after = page[-1]["id"]


SCORE_COLUMNS = [
    "instance_id", "sop_instance_uid", "patient_id", "accession_number", "study_date",
    "model_version", "scored_at", "label", "jsn", "erosion", "box_x", "box_y", "box_w", "box_h",
    "assessable", "reason", "joints_scored",
]  # fmt: skip
_CHANGES = [
    f"{m}_{what}_since_{against}"
    for against in ("previous", "first")
    for m in ("jsn", "erosion", "total")
    for what in ("change", "per_year")
]
PROGRESSION_COLUMNS = [
    "patient_id", "issuer_of_patient_id", "study_date", "study_instance_uid",
    "accession_number", "report_version", "study_sr_sop_instance_uid", "model_version",
    "jsn", "erosion", "total", "joints_scored", "not_assessable",
    *(f"{side}_{m}" for side in "LR" for m in ("jsn", "erosion", "joints_scored")),
    "previous_study_date", "years_since_previous", "joints_compared_previous",
    "joints_left_out_previous", "first_study_date", "years_since_first",
    "joints_compared_first", "joints_left_out_first", *_CHANGES,
]  # fmt: skip
AUDIT_COLUMNS = ["id", "at", "event", "actor", "instance_id", "detail"]
#: a spreadsheet takes a cell starting with one of these for a formula (OWASP, CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: int | None) -> str | int:
    """A grade as a CSV cell: empty for none."""
    return "" if value is None else value


def _safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading quote (a Patient
    ID or an AE title comes from any sender); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _score_rows(page: list[dict[str, Any]]) -> Iterator[list[Any]]:
    for score in page:
        for joint in score["joints"]:
            yield [
                score["instance_id"], score["sop_instance_uid"], score["patient_id"],
                score["accession_number"], score["study_date"], score["model"]["version"],
                score["scored_at"], joint["label"],
                # empty grades, never a guess, for a joint that is not assessable
                _cell(joint["jsn"]), _cell(joint["erosion"]), *joint["box"],
                "yes" if joint["assessable"] else "no", joint["reason"] or "",
                score["totals"]["joints_scored"],
            ]  # fmt: skip


def _blank(value: Any) -> Any:
    """None as an empty cell (a study with no earlier one has no change)."""
    return "" if value is None else value


def _comparison_cells(progression: dict[str, Any] | None, against: str) -> list[Any]:
    c = (progression or {}).get(against) or {}
    return [_blank(c.get(k)) for k in
            ("prior_study_date", "years", "joints_compared", "joints_left_out")]  # fmt: skip


def _progression_rows(page: list[dict[str, Any]]) -> Iterator[list[Any]]:
    for patient in page:
        for s in patient["studies"]:
            p, t = s["progression"] or {}, s["totals"] or {}
            hands = [_blank((s["hands"].get(side) or {}).get(m))
                     for side in "LR" for m in ("jsn", "erosion", "joints_scored")]  # fmt: skip
            changes = [_blank(((p.get(a) or {}).get(m) or {}).get(what))
                       for a in ("previous", "first") for m in ("jsn", "erosion", "total")
                       for what in ("change", "per_year")]  # fmt: skip
            yield [
                patient["patient_id"], patient["issuer_of_patient_id"], _blank(s["study_date"]),
                s["study_instance_uid"], s["accession_number"], s["report_version"],
                s["study_srs"][0]["sop_instance_uid"] if s["study_srs"] else "",
                s["model_version"], *(_blank(t.get(k)) for k in
                ("jsn", "erosion", "total", "joints_scored", "not_assessable")), *hands,
                *_comparison_cells(p, "previous"), *_comparison_cells(p, "first"), *changes,
            ]  # fmt: skip


def _audit_rows(page: list[dict[str, Any]]) -> Iterator[list[Any]]:
    for e in page:
        yield [
            e["id"], e["at"], e["event"], e["actor"], e["instance_id"],
            json.dumps(e["detail"], sort_keys=True),
        ]  # fmt: skip


def _csv(columns: list[str], pages: Iterable[Iterable[list[Any]]], name: str) -> StreamingResponse:
    """A CSV streamed one chunk per page: the whole file is never in memory."""

    def chunks() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        yield out.getvalue()
        for rows in pages:
            out.seek(0)
            out.truncate()
            writer.writerows([_safe(v) for v in row] for row in rows)
            yield out.getvalue()

    return StreamingResponse(
        chunks(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

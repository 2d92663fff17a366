"""What the dashboard's patient page shows: the timeline (:mod:`worker.api.timeline`), its
chart (:mod:`worker.api.chart`) and, for a Patient ID several issuers use, the choice.

Read in one read-only session; the chart is drawn after the read, outside the transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import HTTPException
from markupsafe import Markup

from worker.api.chart import ChartPoint, timeline_svg
from worker.api.timeline import issuers, patient_timeline
from worker.db.engine import read_session_scope


def patient_href(patient_id: str, issuer: str | None = None) -> str:
    """The patient page's address (the ID quoted; ``/`` kept, the route takes a path)."""
    query = "" if issuer is None else "?" + urlencode({"issuer": issuer})
    return f"/patients/{quote(patient_id, safe='/')}{query}"


def chart_points(timeline: dict[str, Any]) -> list[ChartPoint]:
    """One point per assessed study with a Study Date (a study without one has no place on
    a time axis; the table still lists it)."""
    return [
        ChartPoint(
            dt.date.fromisoformat(s["study_date"]),
            int(s["totals"]["jsn"]),
            int(s["totals"]["erosion"]),
            int(s["totals"]["joints_scored"]),
            s["study_instance_uid"],
        )
        for s in timeline["studies"]
        if s["status"] == "assembled" and s["study_date"] and s["totals"]
    ]


def patient_context(url: str, patient_id: str, issuer: str | None) -> dict[str, Any]:
    """The page's context; 404 for a patient the node has no study of."""
    with read_session_scope(url) as session:
        found = issuers(session, patient_id)
        if not found or (issuer is not None and issuer not in found):
            raise HTTPException(404, "no studies of this patient")
        if issuer is None and len(found) > 1:  # a timeline never mixes two patients
            choices = [(i, patient_href(patient_id, i)) for i in found]
            return {"patient_id": patient_id, "choices": choices, "timeline": None}
        timeline = patient_timeline(session, patient_id, issuer if issuer is not None else found[0])
    points = chart_points(timeline)
    title = f"JSN, erosion and total (SvdH) over time, {len(points)} studies"
    best = max((p.joints_scored for p in points), default=0)
    return {
        "patient_id": patient_id,
        "choices": None,
        "timeline": timeline,
        "chart": Markup(timeline_svg(points, title)),  # every text in it escaped where drawn
        "points": points,
        "best_joints": best,
    }

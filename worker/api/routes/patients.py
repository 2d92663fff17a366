"""``/api/v1/patients/{id}/timeline``: one patient's studies over time, with the totals and
the progression of each study's newest report.

A Patient ID names a patient only within its issuer: with ``issuer`` the timeline is that
issuer's patient ("" for studies whose sender gave none); without it, the node's only
issuer of that ID, or 409 when several patients share the ID (a timeline never mixes
patients). Patient IDs are PHI: the audit trail records who asked, and the log has them only
at DEBUG.
"""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy.orm import Session

from worker.api.deps import Read, Reader, Url, audit_query
from worker.api.timeline import issuers, patient_timeline

router = APIRouter(prefix="/api/v1/patients")
log = logging.getLogger(__name__)

Issuer = Annotated[
    str | None,
    Query(max_length=64, description='Issuer of Patient ID; "" for none given by the sender'),
]


def resolve_issuer(session: Session, patient_id: str, issuer: str | None) -> str:
    """The issuer of the timeline: the one asked for, or the ID's only one; 404 for an
    unknown patient, 409 for an ID that several issuers use."""
    found = issuers(session, patient_id)
    if issuer is not None:
        if issuer not in found:
            raise HTTPException(404, "no studies of this patient")
        return issuer
    if not found:
        raise HTTPException(404, "no studies of this patient")
    if len(found) > 1:
        raise HTTPException(
            409,
            {"message": "this Patient ID names patients of several issuers; give ?issuer=",
             "issuers": found},
        )  # fmt: skip
    return found[0]


@router.get("/{patient_id:path}/timeline", tags=["queries"])
def timeline(
    patient_id: str, session: Read, who: Reader, url: Url, issuer: Issuer = None
) -> dict[str, Any]:
    """The patient's studies in Study Date order: per study its newest report's totals (per
    hand and overall), model, progression since the previous and the first study, and its
    study SRs (newest first); studies not assembled yet as ``pending``."""
    log.debug("timeline of patient %s (issuer %r)", patient_id, issuer)
    try:
        chosen = resolve_issuer(session, patient_id, issuer)
        found = patient_timeline(session, patient_id, chosen)
    finally:  # who asked is recorded even for an unknown patient
        audit_query(url, who.name, "patient timeline",
                    {"patient_id": patient_id, "issuer": issuer})  # fmt: skip
    return found

"""``/api/v1/studies``, ``/patients/{id}/scores``, ``/model``, ``/audit`` and ``/failures``:
the read-only resources beside the instances, each audited with who asked."""

import json
from typing import Any

from fastapi import APIRouter

from worker.api.deps import (
    AppSettings,
    AuditWhere,
    Filter,
    Limit,
    Offset,
    Read,
    Reader,
    Url,
    audit_query,
)
from worker.db import queries
from worker.model_ref import model_ref
from worker.models_home import active_model_dir

router = APIRouter(prefix="/api/v1")


@router.get("/studies", tags=["queries"])
def studies(
    session: Read, who: Reader, where: Filter, url: Url, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    found = queries.list_studies(session, where, limit, offset)
    audit_query(url, who.name, "studies", where.as_dict())
    return found


@router.get("/patients/{patient_id}/scores", tags=["queries"])
def patient_scores(
    patient_id: str, session: Read, who: Reader, url: Url, limit: Limit = 200
) -> list[dict[str, Any]]:
    """Every score of one patient's images, newest first (the joints' history)."""
    found = queries.scores_for_patient(session, patient_id, limit)
    audit_query(url, who.name, "patient scores", {"patient_id": patient_id})
    return found


@router.get("/model", tags=["queries"])
def model(who: Reader, settings: AppSettings) -> dict[str, Any]:
    """The card of the model that scores new images now."""
    ref = model_ref(active_model_dir(settings))
    card: dict[str, Any] = json.loads((ref.directory / "card.json").read_text())
    card.pop("training", None)  # the epoch-by-epoch curves: in the model folder
    return card


@router.get("/audit", tags=["audit"])
def audit(
    session: Read, who: Reader, where: AuditWhere, url: Url, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """The audit trail, newest first, this very query's row included."""
    # written (in its own short transaction) before the read, which begins at its first
    # SELECT and so sees it
    audit_query(url, who.name, "audit", where.as_dict())
    return queries.list_audit(session, where, limit, offset)


@router.get("/failures", tags=["queries"])
def failures(session: Read, who: Reader, url: Url) -> list[dict[str, Any]]:
    """Failed instances and deliveries with their reasons."""
    found = queries.failures(session)
    audit_query(url, who.name, "failures", {})
    return found

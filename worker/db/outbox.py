"""The outbox's rows: what waits for delivery (``rascore outbox list``), and making deliveries
due again (an operator's resend, from the command line or the API). Sending them is
:mod:`worker.jobs.outbox`; the node's sweeper queues what is due."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from worker.db.models import Delivery, DeliveryStatus, ResultObject, utcnow


def list_deliveries(
    session: Session, status: DeliveryStatus | None, limit: int
) -> list[dict[str, Any]]:
    """Deliveries in ``status`` (default: all but sent), oldest first, with their object."""
    query = select(Delivery, ResultObject).join(ResultObject)
    if status:
        query = query.where(Delivery.status == status)
    else:
        query = query.where(Delivery.status != DeliveryStatus.SENT)
    return [
        {
            "id": d.id,
            "kind": r.kind,
            "sop_instance_uid": r.sop_instance_uid,
            "destination": d.destination,
            "status": d.status.value,
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at.isoformat(),
            "last_status": d.last_status,
            "last_error": d.last_error,
        }
        for d, r in session.execute(query.order_by(Delivery.id).limit(limit))
    ]


def make_due(session: Session, *where: ColumnElement[bool]) -> list[int]:
    """The deliveries that match become due now (the node's sweeper sends them within
    seconds); returns their ids. A claim in progress is left alone; a stale one expires."""
    return list(
        session.execute(
            update(Delivery)
            .where(*where)
            .values(status=DeliveryStatus.PENDING, next_attempt_at=utcnow(), enqueued_at=None)
            .returning(Delivery.id)
        ).scalars()
    )

"""The node's receiving, as each receiver process runs it (``RASCORE_SCP_PROCESSES``).

A receiver process is spawned (:mod:`dicom_io.net.processes`) and builds everything that holds
a connection or a lock itself: its log handler, the Celery app (the broker client that
publishes jobs), its database engine (``engine_for``, on first use), and the node's SCP with a
:class:`~worker.node.receiving.Receiver`, which reads the active model (``rascore model
activate``) as each new image arrives, so every process queues it for the same model at once;
the sweeper, the API and the supervision of workers stay in the parent.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import ssl

from dicom_io.net import StorageSCP, StoreHandler
from worker.jobs.celery_app import configure
from worker.jobs.queueing import enqueue_score
from worker.model_ref import ModelRef, ModelRefused, model_ref
from worker.models_home import active_model_dir, active_version
from worker.node.receiving import Receiver
from worker.node.store import Store
from worker.settings import Settings

log = logging.getLogger(__name__)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The SCP's TLS context from the settings, or None when no certificate is set."""
    if settings.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_ca is not None:
        context.load_verify_locations(settings.tls_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def storage_scp(settings: Settings, handler: StoreHandler) -> StorageSCP:
    """The node's storage SCP as the settings describe it (not started).

    Listening beyond the loopback address with no ``RASCORE_ALLOWED_AETS``, any calling AE is
    accepted from this machine only; others are refused, and the log line says how to allow.
    """
    return StorageSCP(
        settings.ae_title,
        settings.dicom_port,
        handler,
        spool_dir=settings.spool_dir,
        host=settings.dicom_host,
        max_associations=settings.max_associations,
        max_associations_per_host=settings.max_associations_per_host,
        allowed_calling_aets=settings.allowed_aet_list,
        any_aet_hosts=settings.aet_open_hosts,
        rejection_hint=(
            "allow it with RASCORE_ALLOWED_AETS=AE1,AE2 (or * for any calling AE title)"
        ),
        allowed_hosts=settings.allowed_host_list,
        tls=tls_context(settings),
        min_free_bytes=settings.min_free_mb * 1024 * 1024,
        watch_free=[settings.effective_store_dir],
        max_dataset_bytes=settings.max_dataset_mb * 1024 * 1024,
        sweep_incoming=True,  # the Receiver moves every file it acknowledges out of incoming
    )


def new_receiver(settings: Settings, model: ModelRef) -> Receiver:
    """The node's C-STORE handler, publishing each new job to the broker as it commits and
    queueing it for the model active when it arrives (:func:`follow_active_model`)."""
    url = settings.effective_database_url
    receiver = Receiver(
        url,
        Store(settings.effective_store_dir),
        model,
        settings.hand_keyword_list,
        functools.partial(enqueue_score, url),
    )
    seen = [active_version(settings.home)]

    def follow() -> None:
        # one small file read per new image; the bundle is checked only when it changed
        seen[0] = follow_active_model(settings, receiver, seen[0])

    receiver.follow_model = follow
    return receiver


def follow_active_model(settings: Settings, receiver: Receiver, seen: str | None) -> str | None:
    """After ``rascore model activate``, new images are queued for the newly active model
    (workers load the model each job names, so jobs queued before still finish with theirs).
    A bundle that fails its check is not taken: the receiver goes on with the model it has
    and says why, once. Returns the active version now seen."""
    if settings.model_dir is not None:
        return seen  # pinned by RASCORE_MODEL_DIR
    try:
        version = active_version(settings.home)
    except OSError:
        return seen
    if version == seen:
        return seen
    try:
        model = model_ref(active_model_dir(settings))
    except (ModelRefused, OSError) as exc:
        log.error("active model refused; scoring on with the previous one",
                  extra={"error": str(exc)[:300]})  # fmt: skip
        return version
    if model.version != receiver.model.version:
        receiver.model = model
        log.info("now queueing new images for model", extra={"model": model.version})
    return version


def receiver_scp(settings: Settings, broker_url: str) -> StorageSCP:
    """The node's SCP for one receiver process (called in it; once in the parent too, whose
    SCP only says where to listen and prepares the spool)."""
    receiver = new_receiver(settings, model_ref(active_model_dir(settings)))
    if multiprocessing.parent_process() is not None:  # a spawned receiver process
        from worker import logs

        logs.setup()
        configure(settings, broker_url)
    return storage_scp(settings, receiver)

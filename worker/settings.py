"""Settings of the node, from the environment (prefix ``RASCORE_``) and an optional file.

DESIGN.md (Contracts) fixes the first seven names; the rest are the node's own. Every setting
has a default that runs the whole node on one machine with nothing installed by hand.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Settings(BaseSettings):
    """The node's settings; ``RASCORE_SETTINGS_FILE`` (or ``./.env``) may hold them too."""

    model_config = SettingsConfigDict(
        env_prefix="RASCORE_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,  # RASCORE_STORE_DIR= means the default, not "."
    )

    # -- DESIGN.md contracts --------------------------------------------------------------
    home: Path = Path("./var")
    database_url: str = ""  #: empty: SQLite (WAL) at ``HOME/rascore.db``
    broker_url: str = ""  #: empty: an embedded Redis under ``HOME/broker``, started by serve
    ae_title: str = "RASCORE"
    dicom_port: int = 11112
    destinations: str = ""  #: ``AET@host:port``, comma-separated
    api_port: int = 8080  #: 0: no HTTP API
    api_host: str = "0.0.0.0"

    # -- receiving ------------------------------------------------------------------------
    dicom_host: str = "0.0.0.0"
    #: associations at once (each one a thread; a PACS often opens several)
    max_associations: int = Field(default=40, ge=1)
    #: calling AE titles allowed to associate, comma-separated; ``*``: any. Empty: any when
    #: ``dicom_host`` is a loopback address; otherwise only from this machine (loopback peers),
    #: so a node listening on the network refuses unknown calling AEs unless told otherwise
    allowed_aets: str = ""
    #: the same as ``allowed_aets=*``: accept any calling AE title from any (allowed) host
    accept_any_aet: bool = False
    #: hosts or networks (CIDR) allowed to associate, comma-separated; empty: any
    allowed_hosts: str = ""
    #: TLS: certificate and key of the node, and a CA bundle to verify peers (all optional)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    #: associations (and C-STOREs) are refused while the spool's or the store's disk has
    #: less free space than this
    min_free_mb: int = Field(default=512, ge=0)
    #: a data set larger than this, as received or once inflated, is refused (hand radiographs
    #: are well under 100 MB; the cap bounds what any one reader of a whole data set may hold)
    max_dataset_mb: int = Field(default=256, ge=1)
    #: processes that receive (one listening socket; the caps hold across them): ten
    #: associations in one Python process share its GIL. 0: the usable cores, at most 8
    scp_processes: int = Field(default=0, ge=0)
    #: connections one host may hold at once; more are closed at accept
    max_associations_per_host: int = Field(default=20, ge=1)
    #: words that mark a hand radiograph in Body Part Examined, Protocol Name, Series or Study
    #: Description, or View Position (case-insensitive, comma-separated)
    hand_keywords: str = "HAND,MANO,MAIN,HAND PA,HANDS"

    # -- storage --------------------------------------------------------------------------
    #: where received images and result objects live; every worker must see the same folder
    #: (a shared file system when workers run on several machines). Empty: ``HOME/store``.
    store_dir: Path | None = None

    # -- processing -----------------------------------------------------------------------
    #: scoring worker processes that ``rascore serve`` supervises (and ``rascore worker`` runs)
    workers: int = Field(default=2, ge=0)
    #: model directory, pinning the node and its workers to it; empty: the version activated
    #: by ``rascore model activate`` (``HOME/models``), else the model shipped in the package
    model_dir: Path | None = None
    #: in-task retries of a transient failure (database or store unavailable); then the job is
    #: left to the sweeper, which publishes it again: a transient failure never fails a job
    max_task_retries: int = Field(default=8, ge=0)
    #: the first in-task retry waits this long, each next one twice as long, up to the cap
    task_retry_initial_s: float = Field(default=2.0, gt=0)
    task_retry_max_s: float = Field(default=300.0, gt=0)
    #: a job whose scoring process died this many times (killed for memory, crashed, timed
    #: out) fails with that reason instead of being delivered again
    max_job_attempts: int = Field(default=3, ge=1)
    #: a pool child working on one task for longer is interrupted (soft; 0, or not below the
    #: hard limit: none), then killed (hard)
    task_soft_time_limit_s: float = Field(default=300.0, ge=0)
    task_time_limit_s: float = Field(default=360.0, gt=0)
    #: a pool child grown past this much resident memory (MB) is replaced after its task; 0: never
    worker_max_memory_mb: int = Field(default=2048, ge=0)
    #: an unfinished job published this long ago whose message the broker no longer holds
    #: (lost by Redis, or held by a dead worker) is published again
    reconcile_after_s: float = Field(default=60.0, gt=0)
    #: a study is assembled (both hands, one study SR) once no new image of it has arrived
    #: for this long and all its images are scored, failed or skipped
    study_quiet_s: float = Field(default=60.0, ge=0)
    #: seconds a Redis connection or command may take before it fails (a publish gives up)
    broker_timeout_s: float = Field(default=1.0, gt=0)

    # -- sending --------------------------------------------------------------------------
    #: the first retry of a failed delivery waits this long; each next one twice as long
    send_retry_initial_s: float = Field(default=10.0, gt=0)
    send_retry_max_s: float = Field(default=3600.0, gt=0)
    #: a delivery is given up (state ``failed``, resend by hand) after this many attempts
    send_max_attempts: int = Field(default=20, ge=1)
    #: destinations (as written in ``destinations``) sent to over TLS, comma-separated; ``*``:
    #: all. The server's certificate is verified against ``tls_ca`` (the system's CAs when
    #: unset) and must name the host; ``tls_cert``/``tls_key``, when set, go as the client's.
    tls_destinations: str = ""

    # -- prior studies --------------------------------------------------------------------
    #: ``AET@host:port`` of the PACS asked (C-FIND) for a new study's priors and moving them
    #: (C-MOVE) to ``ae_title``, which that PACS must know; empty: no priors are fetched
    qr_peer: str = ""
    #: how many years before a new study its priors are looked for
    priors_years: int = Field(default=10, ge=0, le=100)
    #: after a failed query or retrieval, the next try waits at least this long
    priors_retry_s: float = Field(default=300.0, ge=0)
    #: send the per-image SR, SC and GSPS of a retrieved prior too; off, they stay on the node
    #: (they would land in an old study read long ago; the comparison is in the new study's SR)
    priors_send_results: bool = False

    # -- dashboard ------------------------------------------------------------------------
    #: a dashboard session ends after this long without a request ...
    dashboard_idle_minutes: float = Field(default=30.0, gt=0)
    #: ... and this long after the login in any case
    dashboard_session_hours: float = Field(default=12.0, gt=0)
    #: origins (``https://host[:port]``) a dashboard POST may also come from, comma-separated,
    #: for a reverse proxy that rewrites Host; the request's own Host is always allowed
    dashboard_origins: str = ""

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'rascore.db').resolve()}"

    @property
    def effective_store_dir(self) -> Path:
        return (self.store_dir or self.home / "store").resolve()

    @property
    def spool_dir(self) -> Path:
        """Where the SCP writes before the node files an image (local to the receiving node)."""
        return (self.home / "spool").resolve()

    @property
    def broker_dir(self) -> Path:
        return (self.home / "broker").resolve()

    @cached_property
    def destination_list(self) -> list[str]:
        return _split(self.destinations)

    @cached_property
    def allowed_aet_list(self) -> list[str] | None:
        """The calling AE titles allowed everywhere; None: any (see :attr:`aet_open_hosts`)."""
        listed = _split(self.allowed_aets)
        if self.accept_any_aet or "*" in listed:
            return None
        if not listed and not self.dicom_loopback_only:
            return []  # secure default: nobody from elsewhere, until allowed explicitly
        return listed or None

    @property
    def aet_open_hosts(self) -> list[str] | None:
        """Hosts from which any calling AE is accepted despite the list: this machine's own,
        in the secure default; None otherwise."""
        if self.allowed_aet_list == [] and not _split(self.allowed_aets):
            return ["127.0.0.0/8", "::1"]
        return None

    @property
    def dicom_loopback_only(self) -> bool:
        """Whether the SCP listens on a loopback address only."""
        host = self.dicom_host.strip().strip("[]")
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @cached_property
    def allowed_host_list(self) -> list[str] | None:
        return _split(self.allowed_hosts) or None

    def sends_tls(self, destination: str) -> bool:
        """Whether results go to ``destination`` (``AET@host:port``) over TLS."""
        wanted = {d.replace(" ", "") for d in _split(self.tls_destinations)}
        return "*" in wanted or destination.replace(" ", "") in wanted

    @cached_property
    def dashboard_origin_list(self) -> list[str]:
        return [o.rstrip("/").lower() for o in _split(self.dashboard_origins)]

    @cached_property
    def hand_keyword_list(self) -> list[str]:
        return [k.upper() for k in _split(self.hand_keywords)]

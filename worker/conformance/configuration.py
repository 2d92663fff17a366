"""The ``RASCORE_`` settings that bear on DICOM, with their defaults and the comments that
document them in :mod:`worker.settings` (read from its source, so they cannot drift)."""

from __future__ import annotations

import inspect
import re

from worker import settings as settings_module
from worker.conformance.markdown import table
from worker.settings import Settings

DICOM_SETTINGS: tuple[str, ...] = (
    "ae_title", "dicom_port", "dicom_host", "destinations", "tls_destinations",
    "max_associations", "max_associations_per_host", "scp_processes", "allowed_aets",
    "accept_any_aet", "allowed_hosts", "tls_cert", "tls_key", "tls_ca", "min_free_mb",
    "max_dataset_mb", "hand_keywords", "send_retry_initial_s", "send_retry_max_s",
    "send_max_attempts", "qr_peer", "priors_years", "priors_retry_s", "priors_send_results",
    "study_quiet_s",
)  # fmt: skip
"""The settings the document lists, in its order; a test checks each is a setting."""

#: for the settings whose meaning DESIGN.md's contract gives rather than a comment
_PLAIN: dict[str, str] = {
    "ae_title": "the node's AE title: called by senders, calling when it sends and queries",
    "dicom_port": "the TCP port the SCP listens on",
    "dicom_host": "the address the SCP listens on (a loopback address: this machine only)",
    "tls_key": "the private key of ``tls_cert``",
    "tls_ca": "CA bundle: given, peers (senders, and destinations) must present a certificate "
    "it signed",
    "send_retry_max_s": "the longest wait between two tries of a delivery",
}

_FIELD = re.compile(r"^    (\w+): [^=]+=(.*?)(?:#:?\s*(.*))?$")


def documented() -> dict[str, str]:
    """Each field's ``#:`` comment (the lines above it and a trailing one), joined."""
    notes: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(settings_module.Settings).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match:
            trailing = match.group(3) or ""
            notes[match.group(1)] = " ".join([*pending, trailing]).strip()
        pending = []
    return notes


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def settings_table() -> str:
    notes = documented()
    rows = [(f"`RASCORE_{name.upper()}`", _default(name), notes.get(name) or _PLAIN[name])
            for name in DICOM_SETTINGS]  # fmt: skip
    return table(("Setting", "Default", "What it does"), rows)

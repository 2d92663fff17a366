"""Patient pseudonyms for DICOM imports: a keyed hash (HMAC-SHA-256) of the Patient ID.

A plain hash of a Patient ID can be reversed by hashing every plausible ID (they are short and
structured); a keyed one cannot without the key, which stays on the node (``RASCORE_HOME``,
mode 0600) and never in a site folder. The same key gives the same pseudonym to the same
patient in every import, so a later import joins the earlier one's patients and a split by
patient stays a split by patient.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_FILE = "site-pseudonym.key"
KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """The key at ``path``, made (random, owner-only) the first time it is needed."""
    if path.is_file():
        key = path.read_bytes()
        if len(key) < 16:
            raise ValueError(f"{path}: a pseudonym key of {len(key)} bytes is too short")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def key_id(key: bytes) -> str:
    """Names the key in a manifest without giving it away."""
    return hashlib.sha256(b"rascore-site-key\0" + key).hexdigest()[:12]


def pseudonym(key: bytes, patient_id: str) -> str:
    """``P`` and 16 hex digits: the same for the same Patient ID and key."""
    digest = hmac.new(key, patient_id.strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return f"P{digest[:16]}"

"""A model's identity, derived from its artefacts and checked against its card (no torch).

The version and device UID come from a hash of the artefacts, so a retrained model can never
pass for the old one: every score stored or sent names the exact weights that made it. The
card states them, and :func:`identify` derives them again from the artefacts and refuses a card
that says otherwise (an edited weight file, or a card claiming another version). It needs no
torch, so the node can check its model before it starts anything.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the shipped model; the one place its location is written
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
#: every artefact a model may have, in hashing order; a model has the detector it names
ARTEFACTS = (
    "cascade.xml",
    "keypoints.pt",
    "layout.json",
    "jsn.pt",
    "erosion.pt",
    "typicality.npz",
    "settings.json",  #: what changes the answers besides weights: abstention, class prior
)
REQUIRED = ("layout.json", "jsn.pt", "erosion.pt")
DETECTOR_FILES = {"cascade": "cascade.xml", "keypoints": "keypoints.pt"}
MODEL_NAME = "rascore-svdh-phantom"


def content_hash(directory: Path) -> str:
    """sha256 over the artefacts present (a model made before keypoints and typicality
    existed keeps its hash)."""
    digest = hashlib.sha256()
    for name in ARTEFACTS:
        if not (directory / name).is_file():
            continue
        digest.update(name.encode())
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()


def device_uid(digest: str) -> str:
    """A DICOM UID (2.25 form) derived from the artefacts' hash."""
    return f"2.25.{uuid.UUID(digest[:32]).int}"


def model_version(base: str, digest: str) -> str:
    """``base+hash12`` (e.g. ``1.1.0+1647e9c5be6f``): the version names the weights."""
    return f"{base}+{digest[:12]}"


class ModelRefused(ValueError):
    """The model directory cannot be used: an artefact or the card is missing, or the card
    does not describe these artefacts. The message is one line, for an operator."""

    reason = "model-refused"  #: a short stable code, as :class:`UnreadableImage` has


@dataclass(frozen=True)
class ModelIdentity:
    """Who a model is, as its artefacts say (the card must agree)."""

    directory: Path
    name: str
    version: str
    device_uid: str
    content_hash: str
    detector_kind: str


def _read_card(directory: Path) -> dict[str, Any]:
    missing = [n for n in (*REQUIRED, "card.json") if not (directory / n).is_file()]
    if missing:
        raise ModelRefused(f"model directory {directory} lacks {', '.join(missing)}")
    try:
        card = json.loads((directory / "card.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelRefused(f"model directory {directory}: card.json does not parse") from exc
    if not isinstance(card, dict) or not all(
        isinstance(card.get(k), str) for k in ("name", "version")
    ):
        raise ModelRefused(f"model directory {directory}: card.json lacks a name or version")
    return card


def identify(directory: Path | None = None) -> ModelIdentity:
    """The model's identity derived from its artefacts, after checking that the card says the
    same: its content hash, the version's hash suffix and the device UID must all be those of
    the artefacts' digest. Raises :class:`ModelRefused` (one line) otherwise."""
    directory = Path(directory or DEFAULT_MODEL_DIR)
    card = _read_card(directory)
    kind = str(card.get("detector", {}).get("kind", "cascade"))
    detector = DETECTOR_FILES.get(kind)
    if detector is None:
        raise ModelRefused(f"model directory {directory}: unknown detector {kind!r}")
    if not (directory / detector).is_file():
        raise ModelRefused(f"model directory {directory} lacks {detector}")
    digest = content_hash(directory)
    if card.get("content_hash") != digest:
        raise ModelRefused(
            f"model directory {directory}: artefacts do not match the card's content hash "
            f"(artefacts {digest[:12]}, card {str(card.get('content_hash'))[:12]})"
        )
    version = model_version(str(card["version"]).split("+", 1)[0], digest)
    if card["version"] != version:
        raise ModelRefused(
            f"model directory {directory}: card claims version {card['version']} but its "
            f"artefacts are version {version}"
        )
    uid = device_uid(digest)
    if card.get("device_uid") != uid:
        raise ModelRefused(
            f"model directory {directory}: card claims device UID {card.get('device_uid')} but "
            f"its artefacts are device {uid}"
        )
    return ModelIdentity(directory, str(card["name"]), version, uid, digest, kind)

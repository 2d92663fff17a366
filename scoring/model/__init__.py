"""The model: its artefacts on disk, who it is, and the networks loaded from it.

- :mod:`.card` — identity from the artefacts' hash, checked against ``card.json`` (no torch);
  the shipped model's location, :data:`DEFAULT_MODEL_DIR`, is written there and nowhere else.
- :mod:`.bundle` — :class:`ModelBundle`: template, scoring networks and typicality, loaded.
- ``default/`` — the shipped model's artefacts and its model card (``card.md``).

Imports only the rest of ``scoring`` (never ``scoring.phantom``, ``dicom_io`` or ``worker``).
"""

from .bundle import ModelBundle, load_net, save_net
from .card import (
    DEFAULT_MODEL_DIR,
    MODEL_NAME,
    REQUIRED,
    ModelIdentity,
    ModelRefused,
    content_hash,
    device_uid,
    identify,
    model_version,
)

__all__ = [
    "DEFAULT_MODEL_DIR",
    "MODEL_NAME",
    "REQUIRED",
    "ModelBundle",
    "ModelIdentity",
    "ModelRefused",
    "content_hash",
    "device_uid",
    "identify",
    "load_net",
    "model_version",
    "save_net",
]

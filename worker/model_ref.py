"""Which model the node scores with, known from its artefacts without loading them (no torch).

The name, version and device UID are those :func:`scoring.model.identify` derives from the
artefacts' digest; a card that does not describe its artefacts raises :class:`ModelRefused`,
so ``rascore serve`` and ``rascore worker`` refuse to start rather than take images that no
worker can score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scoring.model import ModelRefused, identify

__all__ = ["ModelRef", "ModelRefused", "model_ref"]


@dataclass(frozen=True)
class ModelRef:
    directory: Path
    name: str
    version: str
    device_uid: str = ""


def model_ref(directory: Path | None) -> ModelRef:
    """The checked identity of the model in ``directory`` (default: the shipped model)."""
    identity = identify(directory)
    return ModelRef(identity.directory, identity.name, identity.version, identity.device_uid)

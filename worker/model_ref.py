"""Which model the node scores with, known from its card alone (no torch import needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


@dataclass(frozen=True)
class ModelRef:
    directory: Path
    name: str
    version: str


def default_model_dir() -> Path:
    return Path(str(files("scoring"))) / "models" / "default"


def model_ref(directory: Path | None) -> ModelRef:
    directory = Path(directory or default_model_dir())
    card = json.loads((directory / "card.json").read_text())
    return ModelRef(directory, str(card["name"]), str(card["version"]))

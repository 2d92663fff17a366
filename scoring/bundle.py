"""A model directory: a joint detector (keypoint network or cascade), joint layout, both
scoring networks, what the networks saw in training (typicality), and the model card.

The version and device UID come from a hash of the artefacts, so a retrained model can never
pass for the old one: every score stored or sent names the exact weights that made it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .cnn import JointNet, Task, build_net
from .identify import HandTemplate
from .typicality import Typicality

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
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


def save_net(net: torch.nn.Module, path: Path) -> None:
    """Weights in half precision: the networks are scored in float32, stored small."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save(state, path)


def load_net(task: Task, path: Path) -> JointNet:
    net = build_net(task)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    net.eval()
    return net


@dataclass
class ModelBundle:
    directory: Path
    card: dict[str, Any]
    template: HandTemplate
    jsn: JointNet
    erosion: JointNet
    typicality: Typicality | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """Abstention rules and class prior (``settings.json``, hashed with the weights);
        a model made before them has neither."""
        path = self.directory / "settings.json"
        return dict(json.loads(path.read_text())) if path.is_file() else {}

    @property
    def detector_kind(self) -> str:
        """ "keypoints" or "cascade" (models made before the keypoint detector)."""
        return str(self.card.get("detector", {}).get("kind", "cascade"))

    @property
    def cascade_path(self) -> Path:
        return self.directory / "cascade.xml"

    @property
    def keypoints_path(self) -> Path:
        return self.directory / "keypoints.pt"

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def version(self) -> str:
        return str(self.card["version"])

    @property
    def device_uid(self) -> str:
        return str(self.card["device_uid"])

    @classmethod
    def load(cls, directory: Path | None = None) -> ModelBundle:
        directory = Path(directory or DEFAULT_MODEL_DIR)
        missing = [n for n in (*REQUIRED, "card.json") if not (directory / n).is_file()]
        if not missing:
            card = json.loads((directory / "card.json").read_text())
            kind = str(card.get("detector", {}).get("kind", "cascade"))
            detector = DETECTOR_FILES.get(kind)
            if detector is None:
                raise ValueError(f"model directory {directory}: unknown detector {kind!r}")
            missing = [detector] if not (directory / detector).is_file() else []
        if missing:
            raise FileNotFoundError(f"model directory {directory} lacks {', '.join(missing)}")
        digest = content_hash(directory)
        if card.get("content_hash") != digest:
            raise ValueError(
                f"model directory {directory}: artefacts do not match the card's content hash"
            )
        return cls(
            directory,
            card,
            HandTemplate.load(str(directory / "layout.json")),
            load_net("jsn", directory / "jsn.pt"),
            load_net("erosion", directory / "erosion.pt"),
            Typicality.load(directory / "typicality.npz")
            if (directory / "typicality.npz").is_file()
            else None,
        )

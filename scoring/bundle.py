"""A model directory: a joint detector (keypoint network or cascade), joint layout, both
scoring networks, what the networks saw in training (typicality), and the model card.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and the networks are imported when a model is loaded, not checked
    import torch

    from .cnn import JointNet, Task
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


def save_net(net: torch.nn.Module, path: Path) -> None:
    """Weights in half precision: the networks are scored in float32, stored small."""
    import torch

    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save(state, path)


def load_net(task: Task, path: Path) -> JointNet:
    import torch

    from .cnn import build_net

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
        """Load a model whose card describes its artefacts (:func:`identify`); raises
        :class:`ModelRefused` (a ``ValueError``) otherwise."""
        from .identify import HandTemplate
        from .typicality import Typicality

        identity = identify(directory)
        directory = identity.directory
        card = json.loads((directory / "card.json").read_text())
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

"""A loaded model: the joint detector's template, both scoring networks and what they saw
in training (typicality), from a directory whose card :func:`~scoring.model.card.identify` has
checked; and how a network's weights are saved and loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .card import identify

if TYPE_CHECKING:  # torch and the networks are imported when a model is loaded, not checked
    import torch

    from ..cnn import JointNet, Task
    from ..detection.identify import HandTemplate
    from ..typicality import Typicality


def save_net(net: torch.nn.Module, path: Path) -> None:
    """Weights in half precision: the networks are scored in float32, stored small."""
    import torch

    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save(state, path)


def load_net(task: Task, path: Path) -> JointNet:
    import torch

    from ..cnn import build_net

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
        from ..detection.identify import HandTemplate
        from ..typicality import Typicality

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

"""The model directory a training run leaves: the detector, the template, the two networks,
the typicality model and the settings, with the card (``card.json``) that names them by their
content hash. The evaluation is added to the card afterwards (``rascore train``)."""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from scoring.detection.identify import HandTemplate
from scoring.model import MODEL_NAME, content_hash, device_uid, save_net
from scoring.phantom import GENERATOR_VERSION
from scoring.training.cnn import TrainedNet
from scoring.training.keypoints import TrainedKeypoints
from scoring.typicality import Typicality
from worker.lab.training_data import RealData

if TYPE_CHECKING:
    from worker.lab.recipe import Recipe


def history_dict(trained: TrainedNet) -> dict[str, Any]:
    return {
        "best_epoch": trained.best_epoch,
        "epochs": [asdict(e) for e in trained.history],
    }


@dataclass(frozen=True)
class Trained:
    """What a training run made: the detector (a cascade file, or the keypoint network), the
    hand template, the two grading networks and the typicality model."""

    detector: Path | TrainedKeypoints
    template: HandTemplate
    jsn: TrainedNet
    erosion: TrainedNet
    typicality: Typicality


def write_model(
    out: Path,
    trained: Trained,
    recipe: Recipe,
    extra: dict[str, Any],
    real: RealData | None,
    class_prior: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model directory and its card (JSON and Markdown, evaluation added later)."""
    detector_card, method = _write_artefacts(out, trained, recipe, class_prior)
    digest = content_hash(out)
    training_data: dict[str, Any] = {
        "kind": "synthetic hand-radiograph phantom"
        + (" and real landmarked hands" if real else ""),
        "generator_version": GENERATOR_VERSION,
        "train": asdict(recipe.train),
        "validation": asdict(recipe.validation),
        "test": asdict(recipe.test),
    }
    if real is not None:
        training_data["real"] = real.card()
    card = _card(digest, method, training_data, detector_card, recipe, class_prior)
    card["training"] = {
        "jsn": history_dict(trained.jsn),
        "erosion": history_dict(trained.erosion),
        **extra,
        "machine": f"{platform.machine()}, torch {torch.__version__}",
    }
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return card


def _card(
    digest: str,
    method: str,
    training_data: dict[str, Any],
    detector_card: dict[str, Any],
    recipe: Recipe,
    class_prior: dict[str, Any] | None,
) -> dict[str, Any]:
    """Who the model is, what it is for, how it was made (the training curves are added)."""
    real = "real" in training_data
    return {
        "name": MODEL_NAME,
        "version": f"1.1.0+{digest[:12]}",
        "device_uid": device_uid(digest),
        "content_hash": digest,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "intended_use": (
            "Research and integration testing of the rascore node. NOT FOR DIAGNOSTIC USE. "
            "Trained on synthetic phantoms"
            + (" and healthy children's hands (no RA damage)" if real else " only")
            + "; a site must retrain and validate on its own labelled radiographs before any "
            "clinical use."
        ),
        "method": f"After Hirano et al. 2019: {method}; CNNs for SvdH JSN (0-4) and erosion "
        "(0-5); joints whose clips are unlike the training clips, or whose grade the network "
        "is unsure of, are reported as not assessable.",
        "training_data": training_data,
        "detector": detector_card,
        "abstention": asdict(recipe.abstention),
        "class_prior": class_prior or {},
        "recipe": {
            "detector": recipe.detector,
            "cascade": asdict(recipe.cascade),
            "cascade_images": recipe.cascade_images,
            "keypoints": asdict(recipe.keypoints),
            "keypoint_images": recipe.keypoint_images,
            "real_repeat": recipe.real_repeat,
            "cnn": asdict(recipe.cnn),
            "cnn_threads": recipe.cnn_threads,  # float sums, hence the weights, depend on it
        },
    }


def _write_artefacts(
    out: Path, trained: Trained, recipe: Recipe, class_prior: dict[str, Any] | None
) -> tuple[dict[str, Any], str]:
    """Write what the model is made of; returns the detector's card entry and its method."""
    detector = trained.detector
    out.mkdir(parents=True, exist_ok=True)
    for name in ("cascade.xml", "keypoints.pt"):  # a model holds the one detector it names
        (out / name).unlink(missing_ok=True)
    if isinstance(detector, Path):
        shutil.copyfile(detector, out / "cascade.xml")
        detector_card: dict[str, Any] = {
            "kind": "cascade",
            "min_neighbors": recipe.min_neighbors,
            "scale_factor": recipe.scale_factor,
        }
        method = "Haar cascade (OpenCV 3.4 opencv_traincascade) for joint detection"
    else:
        save_net(detector.net, out / "keypoints.pt")
        detector_card = {"kind": "keypoints"}
        method = (
            "a heat-map keypoint network for joint detection (rascore's, in place of the "
            "paper's Haar cascade)"
        )
    (out / "layout.json").write_text(json.dumps(trained.template.to_dict(), indent=1))
    save_net(trained.jsn.net, out / "jsn.pt")
    save_net(trained.erosion.net, out / "erosion.pt")
    trained.typicality.save(out / "typicality.npz")
    settings: dict[str, Any] = {"abstention": asdict(recipe.abstention)}
    if class_prior:
        settings["class_prior"] = class_prior
    (out / "settings.json").write_text(json.dumps(settings, indent=1))
    return detector_card, method

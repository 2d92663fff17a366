"""``rascore train --site DIR``: the grading networks fine-tuned on a site's own labelled
radiographs, written as a complete model whose card says what it was made from.

The site's patients are split once (:mod:`.split`): training patients teach, validation
patients choose the epoch and the typicality threshold, and test patients are scored once, by
the finished model through the whole scorer, for the card's figures. Nothing of the test
patients is seen before that.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scoring.cnn import JointNet, Task, predict_with_features, to_tensor
from scoring.model import DEFAULT_MODEL_DIR, identify
from scoring.pipeline import Scorer
from scoring.training.cnn import TrainConfig, TrainedNet, centre, train_net
from scoring.typicality import Typicality
from worker.lab.model_writer import history_dict
from worker.lab.site.figures import evaluate_images
from worker.lab.site.folder import SiteFolder, SiteImage, open_site
from worker.lab.site.samples import (
    READER_NOTES,
    READERS,
    Samples,
    build_samples,
    consensus,
    joint_targets,
    label_positions,
)
from worker.lab.site.site_bundle import markdown_card, site_card, write_artefacts
from worker.lab.site.site_crops import SiteClips, clip_images
from worker.lab.site.split import PatientSplit, split_patients

Progress = Callable[[str, int], Callable[[], None]]
TASKS: tuple[Task, ...] = ("jsn", "erosion")
SUMMARY_FIGURES = ("n", "images", "pea", "pea_ci95", "pca", "pca_ci95", "kappa", "kappa_ci95")


def _quiet(_name: str, _total: int) -> Callable[[], None]:
    return lambda: None


@dataclass(frozen=True)
class SiteRecipe:
    """How a site model is trained (recorded in its card)."""

    max_epochs: int = 30
    patience: int = 6
    batch_size: int = 128
    #: fine-tuning moves trained weights a little; from scratch they start at random
    learning_rate: float = 1e-4
    scratch_learning_rate: float = 1e-3
    readers: str = "mean"  #: see :mod:`.samples`
    split_seed: int = 0
    seed: int = 0
    threads: int = 2  #: torch threads

    def small(self) -> SiteRecipe:
        """A tiny recipe for smoke tests: a few epochs on a few clips, seconds on a CPU."""
        return replace(self, max_epochs=2, patience=2, batch_size=32)

    def config(self, scratch: bool) -> TrainConfig:
        rate = self.scratch_learning_rate if scratch else self.learning_rate
        return TrainConfig(
            max_epochs=self.max_epochs,
            patience=self.patience,
            batch_size=self.batch_size,
            learning_rate=rate,
            seed=self.seed,
        )


@dataclass
class _Parts:
    """The site's images and labels, by part of the split."""

    images: dict[str, list[SiteImage]]

    @classmethod
    def of(cls, site: SiteFolder, split: PatientSplit) -> _Parts:
        images: dict[str, list[SiteImage]] = {"train": [], "validation": [], "test": []}
        for image in site.images:
            images[split.part(image.patient)].append(image)
        return cls(images)

    def ids(self, part: str) -> set[str]:
        return {image.image_id for image in self.images[part]}


def _features(nets: dict[str, TrainedNet], clips: np.ndarray) -> np.ndarray:
    """Both networks' hidden activations of the clips' joint boxes."""
    boxes = centre(clips)
    return np.hstack([predict_with_features(nets[t].net, boxes)[1] for t in TASKS])


def _train(
    source: Scorer,
    scratch: bool,
    recipe: SiteRecipe,
    train: Samples,
    val: Samples,
    progress: Progress,
) -> dict[str, TrainedNet]:
    nets: dict[str, TrainedNet] = {}
    for task in TASKS:
        x_train, y_train, _ = train.task(task)
        x_val, y_val, _ = val.task(task)
        if len(x_train) < 2 or len(x_val) < 1:
            raise ValueError(
                f"too few {task.upper()} labels to train: {len(x_train)} training and "
                f"{len(x_val)} validation joints"
            )
        start = None if scratch else copy.deepcopy(getattr(source.bundle, task))
        advance = progress(f"{task} network (epochs)", recipe.max_epochs)
        trained = train_net(
            task,
            x_train,
            y_train,
            x_val,
            y_val,
            recipe.config(scratch),
            on_epoch=lambda _log, advance=advance: advance(),  # type: ignore[misc]
            initial=copy.deepcopy(start),
        )
        best = trained.history[trained.best_epoch - 1].val_loss
        if start is not None and _val_loss(start, x_val, y_val) <= best:
            # fine-tuning made the validation patients no better: keep the start (epoch 0)
            trained = TrainedNet(task, start, 0, trained.history)
        nets[task] = trained
    return nets


def _val_loss(net: JointNet, clips: np.ndarray, grades: np.ndarray) -> float:
    """Mean cross-entropy on the clips' joint boxes, as train_net measures its epochs."""
    net.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(clips), 2048):
            logits = net(to_tensor(centre(clips[i : i + 2048])))
            target = torch.from_numpy(grades[i : i + 2048].astype(np.int64))
            total += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
    return total / max(len(clips), 1)


def _recipe_card(recipe: SiteRecipe, scratch: bool, source: Scorer) -> dict[str, Any]:
    return {
        "start": "from scratch (the starting model's detector only)" if scratch else "fine-tune",
        "from_model": {
            "name": source.bundle.name,
            "version": source.bundle.version,
            "content_hash": source.bundle.card.get("content_hash"),
        },
        "cnn": asdict(recipe.config(scratch)),
        "readers": recipe.readers,
        "readers_note": READER_NOTES[recipe.readers],
        "torch_threads": recipe.threads,
    }


def _site_card(site: SiteFolder, parts: _Parts, clips: SiteClips) -> dict[str, Any]:
    return {
        "digest": site.digest,
        "source": site.source,
        "images": len(site.images),
        "patients": len(site.patients()),
        "readers": site.readers(),
        "label_rows": len(site.labels),
        "images_per_part": {name: len(images) for name, images in parts.images.items()},
        "train_and_validation_clips": clips.card(),
    }


def train_site(
    site_root: Path,
    out: Path,
    from_model: Path | None = None,
    scratch: bool = False,
    recipe: SiteRecipe = SiteRecipe(),
    progress: Progress = _quiet,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Train, write and evaluate the site model in ``out``; returns its card. Raises
    SiteFolderError, ModelRefused or ValueError (one line each) on bad input."""
    started = time.perf_counter()
    if recipe.readers not in READERS:
        raise ValueError(f"readers must be one of {', '.join(READERS)}")
    source_dir = identify(from_model or DEFAULT_MODEL_DIR).directory
    if out.resolve() == source_dir.resolve():
        raise ValueError(f"{out}: is the starting model; write the site model elsewhere")
    site = open_site(site_root)
    split = split_patients(site.patients(), recipe.split_seed)
    parts = _Parts.of(site, split)
    torch.set_num_threads(max(recipe.threads, 1))
    source = Scorer.load(source_dir)
    learn = parts.ids("train") | parts.ids("validation")
    positions = {k: v for k, v in label_positions(site.labels).items() if k[0] in learn}
    images = parts.images["train"] + parts.images["validation"]
    clips = clip_images(site, images, positions, source, progress("site images", len(images)))
    log(f"{len(clips.clips)} joints clipped, {clips.not_found} not found by the detector")
    targets = joint_targets([lab for lab in site.labels if lab.image_id in learn], recipe.readers)
    train = build_samples([t for t in targets if t.image_id in parts.ids("train")], clips.clips)
    val = build_samples([t for t in targets if t.image_id in parts.ids("validation")], clips.clips)
    nets = _train(source, scratch, recipe, train, val, progress)
    typicality = Typicality.fit(
        _features(nets, train.unique_clips()), _features(nets, val.unique_clips())
    )
    digest = write_artefacts(out, source.bundle, nets["jsn"], nets["erosion"], typicality)
    trained_s = round(time.perf_counter() - started, 1)
    card = site_card(
        digest,
        source.bundle,
        {
            "site_data": _site_card(site, parts, clips),
            "split": split.card(),
            "recipe": _recipe_card(recipe, scratch, source),
            "training": {
                **{task: history_dict(nets[task]) for task in TASKS},
                "best_epoch_note": "the epoch of least validation loss; 0: the starting "
                "weights, kept because no epoch of fine-tuning bettered them",
                "samples": {"train": train.counts(), "validation": val.counts()},
                "typicality_threshold": round(typicality.threshold, 3),
                "seconds": trained_s,
            },
        },
    )
    (out / "card.json").write_text(json.dumps(card, indent=1))  # the model is whole: load it
    test = parts.images["test"]
    truth = {k: v for k, v in consensus(site.labels).items() if k[0] in parts.ids("test")}
    card["evaluation"] = evaluate_images(
        Scorer.load(out), site, test, truth, progress("test images", len(test))
    )
    card["evaluation_from_model"] = evaluate_images(
        source, site, test, truth, progress("test images, starting model", len(test))
    )
    return write_card(out, card)


def write_card(out: Path, card: dict[str, Any]) -> dict[str, Any]:
    """``card.json`` and ``card.md`` (the card is not hashed: the version names the weights)."""
    (out / "card.json").write_text(json.dumps(card, indent=1))
    (out / "card.md").write_text(markdown_card(card))
    return card


def summary(card: dict[str, Any], out: Path) -> dict[str, Any]:
    """What ``rascore train --site --json`` prints."""
    evaluation = card["evaluation"]
    return {
        "out": str(out),
        "name": card["name"],
        "version": card["version"],
        "content_hash": card["content_hash"],
        "from_model": card["recipe"]["from_model"]["version"],
        "start": card["recipe"]["start"],
        "site_digest": card["site_data"]["digest"],
        "counts": {
            "patients": {p: len(card["split"][p]) for p in ("train", "validation", "test")},
            "images": card["site_data"]["images_per_part"],
            "samples": card["training"]["samples"],
            "clips": card["site_data"]["train_and_validation_clips"],
            "test_joints": {
                k: evaluation[k] for k in ("joints_labelled", "joints_found", "joints_graded")
            },
        },
        "figures": {
            kind: {k: evaluation[kind][k] for k in SUMMARY_FIGURES} for kind in ("jsn", "erosion")
        },
        "intended_use": card["intended_use"],
    }

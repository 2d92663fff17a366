"""A site model's directory: the same layout as the shipped model (so ``Scorer.load`` and
:func:`scoring.model.card.identify` take it), named by its own content hash, with a card that
says what it was made from and that it is not for diagnostic use.

The detector and the mean hand are the starting model's, copied unchanged: the site fine-tunes
the grading networks only. The typicality model is fitted again (the networks' features have
moved), and the class prior is dropped: it moved phantom frequencies towards a clinic's, and a
site's own labels already have its own frequencies.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scoring.model import ModelBundle, content_hash, device_uid, model_version, save_net
from scoring.model.card import ARTEFACTS, DETECTOR_FILES
from scoring.pipeline import Abstention
from scoring.training.cnn import TrainedNet
from scoring.typicality import Typicality

SITE_MODEL_NAME = "rascore-svdh-site"
INTENDED_USE = (
    "NOT FOR DIAGNOSTIC USE. Research model fine-tuned on one site's own labelled hand "
    "radiographs. Its figures come from a handful of that site's patients held out as a test "
    "set; before any use the site must validate it on its own data with `rascore validate` "
    "(readers' scores the model has never seen) and decide for itself."
)


def write_artefacts(
    out: Path, source: ModelBundle, jsn: TrainedNet, erosion: TrainedNet, typicality: Typicality
) -> str:
    """Write what the model is made of; returns its content hash."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (*ARTEFACTS, "card.json", "card.md"):  # nothing stale is hashed or shown
        (out / name).unlink(missing_ok=True)
    detector = DETECTOR_FILES[source.detector_kind]
    shutil.copyfile(source.directory / detector, out / detector)
    shutil.copyfile(source.directory / "layout.json", out / "layout.json")
    save_net(jsn.net, out / "jsn.pt")
    save_net(erosion.net, out / "erosion.pt")
    typicality.save(out / "typicality.npz")
    abstention = source.settings.get("abstention", asdict(Abstention()))
    (out / "settings.json").write_text(json.dumps({"abstention": abstention}, indent=1))
    return content_hash(out)


def site_version(source: ModelBundle, digest: str) -> str:
    """The starting model's version base with ``-site``, and the new weights' hash."""
    base = source.version.split("+", 1)[0]
    return model_version(base if base.endswith("-site") else f"{base}-site", digest)


def site_card(digest: str, source: ModelBundle, parts: dict[str, Any]) -> dict[str, Any]:
    """The card: identity from the digest, then ``parts`` (site data, split, recipe,
    training, evaluation) as the trainer made them."""
    return {
        "name": SITE_MODEL_NAME,
        "version": site_version(source, digest),
        "device_uid": device_uid(digest),
        "content_hash": digest,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "intended_use": INTENDED_USE,
        "method": "After Hirano et al. 2019: the starting model's joint detector and mean hand, "
        "unchanged; its JSN (0-4) and erosion (0-5) CNNs fine-tuned (or trained from scratch) "
        "on clips of the site's labelled joints; typicality refitted on the site's clips; no "
        "class prior (the site's labels carry its own grade frequencies).",
        "detector": dict(source.card.get("detector", {"kind": source.detector_kind})),
        "abstention": source.settings.get("abstention", asdict(Abstention())),
        "class_prior": {},
        **parts,
    }


def _figure_lines(evaluation: dict[str, Any], title: str) -> list[str]:
    lines = [
        f"## {title}",
        "",
        f"Model {evaluation['model']['version']} on {evaluation['images']} test images: "
        f"{evaluation['joints_labelled']} labelled joints, {evaluation['joints_found']} found, "
        f"{evaluation['joints_graded']} graded. Truth: {evaluation['truth']}; "
        f"intervals: {evaluation['ci']}.",
        "",
        "| score | joints | images | PEA (95 % CI) | PCA (95 % CI) | κ (95 % CI) |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("jsn", "erosion"):
        f = evaluation[kind]
        cells = [
            f"{f[name]} ({f[name + '_ci95'][0]}–{f[name + '_ci95'][1]})"
            for name in ("pea", "pca", "kappa")
        ]
        lines.append(f"| {kind} | {f['n']} | {f['images']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown_card(card: dict[str, Any]) -> str:
    """The site model's card in Markdown."""
    split = card["split"]
    recipe = card["recipe"]
    lines = [
        f"# Model card: {card['name']} {card['version']}",
        "",
        f"**{card['intended_use']}**",
        "",
        f"- Device UID: `{card['device_uid']}`",
        f"- Content hash: `{card['content_hash']}`",
        f"- Created: {card['created']}",
        f"- Method: {card['method']}",
        f"- Site data digest: `{card['site_data']['digest']}`",
        f"- Started from: {recipe['from_model']['name']} {recipe['from_model']['version']}"
        f" ({recipe['start']})",
        f"- Recipe: up to {recipe['cnn']['max_epochs']} epochs (patience "
        f"{recipe['cnn']['patience']}), learning rate {recipe['cnn']['learning_rate']}, batch "
        f"{recipe['cnn']['batch_size']}; readers: {recipe['readers']} "
        f"({recipe['readers_note']})",
        f"- Best epochs: JSN {card['training']['jsn']['best_epoch']}, erosion "
        f"{card['training']['erosion']['best_epoch']} ({card['training']['best_epoch_note']})",
        f"- Split by patient (seed {split['seed']}, {split['method']}): "
        f"{len(split['train'])} train, {len(split['validation'])} validation, "
        f"{len(split['test'])} test patients",
        "",
    ]
    lines += _figure_lines(card["evaluation"], "Test patients: this model")
    if card.get("evaluation_from_model"):
        lines += _figure_lines(card["evaluation_from_model"], "Test patients: the starting model")
    lines += [
        "## Limitations",
        "",
        "A few test patients from one site give wide intervals and say nothing of other sites, "
        "machines or populations. Not for diagnostic use; validate with `rascore validate`.",
        "",
    ]
    return "\n".join(lines)

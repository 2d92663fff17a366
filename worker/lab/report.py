"""``rascore evaluate --report DIR``: the figures as Markdown and the plots of the paper's Fig. 3
(training curves, score distributions, confusion matrices, scatter of per-radiograph totals)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from worker.lab.evaluate_folder import markdown_table


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _training_curves(card: dict[str, Any], out: Path) -> Path | None:
    training = card.get("training", {})
    if "jsn" not in training:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), constrained_layout=True)
    for col, task in enumerate(("jsn", "erosion")):
        epochs = training[task]["epochs"]
        x = [e["epoch"] for e in epochs]
        for row, (key, label) in enumerate((("accuracy", "accuracy (PEA)"), ("loss", "loss"))):
            ax = axes[row, col]
            ax.plot(x, [e[f"train_{key}"] for e in epochs], label="train")
            ax.plot(x, [e[f"val_{key}"] for e in epochs], label="validation")
            ax.axvline(training[task]["best_epoch"], color="grey", ls=":", label="kept")
            ax.set_title(f"{task.upper() if task == 'jsn' else 'Erosion'}: {label}")
            ax.set_xlabel("epoch")
            ax.legend(fontsize=8)
    return _save(fig, out / "training-curves.png")


def _distributions_and_confusion(figures: dict[str, Any], out: Path) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(9, 8), constrained_layout=True)
    for col, (task, classes) in enumerate((("jsn", 5), ("erosion", 6))):
        confusion = np.asarray(figures[task]["confusion"])
        truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
        ax = axes[0, col]
        x = np.arange(classes)
        ax.bar(x - 0.2, truth, 0.4, label="truth")
        ax.bar(x + 0.2, predicted, 0.4, label="model")
        ax.set_xticks(x)
        ax.set_title(f"{'JSN' if task == 'jsn' else 'Erosion'} score distribution")
        ax.set_xlabel("score")
        ax.set_ylabel("joints")
        ax.legend(fontsize=8)
        ax = axes[1, col]
        ax.imshow(confusion, cmap="Blues")
        for i in range(classes):
            for j in range(classes):
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xticks(x)
        ax.set_yticks(x)
        ax.set_xlabel("model")
        ax.set_ylabel("truth")
        ax.set_title("confusion matrix")
    return _save(fig, out / "scores.png")


def _totals_scatter(figures: dict[str, Any], out: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), constrained_layout=True)
    for ax, task in zip(axes, ("jsn", "erosion"), strict=True):
        t = figures["totals"][task]["true"]
        p = figures["totals"][task]["predicted"]
        ax.scatter(t, p, s=16)
        top = max([*t, *p, 1])
        ax.plot([0, top], [0, top], color="grey", ls=":")
        ax.set_xlabel("truth: total per radiograph")
        ax.set_ylabel("model: total per radiograph")
        ax.set_title(
            f"{'JSN' if task == 'jsn' else 'Erosion'}: r = {figures[task]['pearson_total']:.2f}"
        )
    return _save(fig, out / "totals.png")


def write_report(figures: dict[str, Any], card: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [p for p in (_training_curves(card, out),) if p]
    written += [_distributions_and_confusion(figures, out), _totals_scatter(figures, out)]
    model = figures.get("model", {})
    text = [
        f"# Evaluation of {model.get('name', '')} {model.get('version', '')}",
        "",
        "NOT FOR DIAGNOSTIC USE: trained and evaluated on synthetic phantoms.",
        "",
        markdown_table(figures),
        "",
    ]
    text += [f"![{p.stem}]({p.name})" for p in written]
    (out / "evaluation.md").write_text("\n".join(text) + "\n")
    return [*written, out / "evaluation.md"]

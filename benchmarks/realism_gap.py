"""How far phantom joint clips are from real ones; prints JSON.

    python benchmarks/realism_gap.py [--real DIR] [--phantoms N] [--epochs E]
                                     [--montage /tmp/FILE.png]

A small classifier learns to tell phantom joint clips (the 48×48 box, as the grading CNNs see
it) from real ones; its held-out ROC AUC is the realism gap: 0.5 the phantom passes for real,
1.0 every clip gives itself away. Phantoms: seed 5101 to train, 5102 to test (the model's own
seeds 1001/2002/3003 stay unseen); real: the Digital Hand Atlas hands (DESIGN.md, Real data),
the fixed train split to train, the validation split to test. Two classifiers: a CNN of two
convolutions on the clip normalised as scoring.cnn.to_tensor does (the headline) and a logistic
regression on the statistics of scoring.evaluation.realism. The CNN is retrained on clips with one
property taken away from both kinds (pixel noise and fine texture blurred off; the intensity
histogram equalised; all but the coarse layout), and on phantoms patched after rendering to the
real edge blur, noise and histograms: the gap left says how much those properties carry. Every
statistic is given as phantom vs real medians and its own held-out AUC, ranked, so whoever
improves the phantom sees what to change first.

Real pictures never leave memory: only figures are printed, and the montage of phantom and
real clips (``--montage``, for a person to look at) goes to /tmp, never into the repository.
Without the folder it prints ``{"skipped": reason}`` and exits 0.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.cnn import to_tensor
from scoring.detection.identify import HandTemplate
from scoring.evaluation import realism
from scoring.training.cnn import centre
from worker.lab.real_images import read_landmarks, real_split
from worker.lab.training_data import PhantomSet, prepare, prepare_real

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SEED, TEST_SEED = 5101, 5102  #: not the model's 1001 / 2002 / 3003
#: what a CNN variant does to the clips (boxes, labels) of both kinds before it learns
Change = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Clips:
    """uint8 N×48×48 joint boxes, 1 for real and 0 for phantom, the image each came from and
    whether the joint is healthy (real: always; phantom: JSN 0 and erosion 0)."""

    def __init__(self, parts: list[tuple[np.ndarray, int, str, np.ndarray]]) -> None:
        self.boxes = np.concatenate([np.ascontiguousarray(centre(c)) for c, _, _, _ in parts])
        self.labels = np.concatenate([np.full(len(c), y, np.int64) for c, y, _, _ in parts])
        self.images = np.concatenate([np.full(len(c), g, object) for c, _, g, _ in parts])
        self.healthy = np.concatenate([h for _, _, _, h in parts])


def load(args: argparse.Namespace) -> tuple[Clips, Clips]:
    """Train and test clips: phantoms of the two seeds, real hands of the two splits."""
    parts: dict[str, list[tuple[np.ndarray, int, str, np.ndarray]]] = {"train": [], "test": []}
    for split, seed in (("train", TRAIN_SEED), ("test", TEST_SEED)):
        phantom_set = PhantomSet(seed=seed, count=args.phantoms, distribution="uniform")
        for index in range(args.phantoms):
            p = prepare((phantom_set, index))
            parts[split].append((p.clips, 0, f"phantom-{seed}-{index}", (p.jsn + p.erosion) == 0))
    template = HandTemplate.load(str(ROOT / "scoring/model/default/layout.json"))
    for image in read_landmarks(args.real / "landmarks.csv", args.real):
        r = prepare_real((image, template))
        if len(r.clips):
            split = "train" if real_split(image.image_id) == "train" else "test"
            healthy = np.ones(len(r.clips), bool)
            parts[split].append((r.clips, 1, f"real-{image.image_id}", healthy))
    return Clips(parts["train"]), Clips(parts["test"])


class GapNet(nn.Module):
    """Two 3×3 convolutions with pooling, a small hidden layer, one logit (real vs phantom)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 12 * 12, 32),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(32, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x).squeeze(1)
        return out


def train_cnn(boxes: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> GapNet:
    """Adam on class-weighted logistic loss; horizontal flips, because real hands are all left
    hands and phantoms both: handedness is no realism."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = to_tensor(boxes), torch.from_numpy(labels.astype(np.float32))
    positives = float(labels.mean())
    net = GapNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - positives) / positives))
    for _ in range(epochs):
        net.train()
        order = rng.permutation(len(x))
        for start in range(0, len(x), 64):
            batch = torch.from_numpy(order[start : start + 64])
            xb = x[batch]
            flip = torch.from_numpy(rng.random(len(batch)) < 0.5)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            optimiser.zero_grad()
            loss = loss_fn(net(xb), y[batch])
            loss.backward()
            optimiser.step()
    return net


@torch.inference_mode()
def cnn_scores(net: GapNet, boxes: np.ndarray) -> np.ndarray:
    net.eval()
    x = to_tensor(boxes)
    return np.asarray((net(x) + net(x.flip(3))).numpy() / 2.0)


def blurred(boxes: np.ndarray) -> np.ndarray:
    """Gaussian σ = 1 px: pixel noise, grain and fine trabecular texture gone, edges kept."""
    return np.stack([cv2.GaussianBlur(b, (0, 0), 1.0) for b in boxes])


def equalised(boxes: np.ndarray) -> np.ndarray:
    """Each clip's grey levels replaced by their rank: a flat histogram, the same for every
    clip, so no histogram shape is left to tell the kinds apart; layout and edges stay."""
    flat = boxes.reshape(len(boxes), -1)
    ranks = np.argsort(np.argsort(flat, axis=1, kind="stable"), axis=1)
    return (ranks * 255 // (flat.shape[1] - 1)).astype(np.uint8).reshape(boxes.shape)


def layout(boxes: np.ndarray) -> np.ndarray:
    """Down to 6×6 (8 px blocks), back up, equalised: nothing left but where the clip is
    brighter or darker (bone, joint space, soft tissue, background), not even by how much."""
    return equalised(
        np.stack(
            [
                cv2.resize(cv2.resize(b, (6, 6), interpolation=cv2.INTER_AREA), (48, 48))
                for b in boxes
            ]
        )
    )


def matcher(real_train: np.ndarray, seed: int) -> Change:
    """What a quick fix after rendering would give: phantom clips blurred to the real edge
    width (σ 1.4 px), white noise added up to the real flat-region noise, and each clip's
    grey levels mapped onto a random real training clip's histogram (real clips pass as
    they are). If the gap stays, it lies in the anatomy and layout, not in these."""
    target = float(np.median(realism.flat_noise(realism.standardise(real_train))["flat_noise"]))
    references = np.sort(real_train.reshape(len(real_train), -1), axis=1)

    def change(boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = boxes.copy()
        for i in np.flatnonzero(labels == 0):
            b = cv2.GaussianBlur(boxes[i], (0, 0), 1.4).astype(np.float64)
            have = realism.flat_noise(realism.standardise(b[None]))["flat_noise"][0]
            b = b + rng.standard_normal(b.shape) * np.sqrt(max(target**2 - have**2, 0.0)) * b.std()
            ranks = np.argsort(np.argsort(b.ravel(), kind="stable"))
            out[i] = references[rng.integers(len(references))][ranks].reshape(b.shape)
        return out

    return change


def rated(
    scores: np.ndarray, test: Clips, rng: np.random.Generator, resamples: int
) -> dict[str, Any]:
    """AUC (real = positive) with its 95 % interval over images, the same on the test's
    healthy phantom joints only (disease is meant to differ from healthy children's hands), and
    the class-balanced log loss (1 bit: no better than a coin)."""
    lo, hi = realism.bootstrap_auc(scores, test.labels, test.images, rng, resamples)
    keep = test.healthy
    y = test.labels
    # log loss of the logit, each class weighted equally: still falls as the phantom improves
    # while the AUC stays saturated at 1
    bits = np.logaddexp(0.0, np.where(y == 1, -scores, scores)) / np.log(2.0)
    return {
        "auc": round(realism.auc(scores, y), 4),
        "ci95": [round(lo, 4), round(hi, 4)],
        "auc_healthy_phantom_joints": round(realism.auc(scores[keep], y[keep]), 4),
        "balanced_logloss_bits": round(float((bits[y == 0].mean() + bits[y == 1].mean()) / 2), 4),
    }


def feature_table(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray], train_y: np.ndarray, y: np.ndarray
) -> list[dict[str, Any]]:
    """Every statistic: phantom and real medians (and quartiles), the held-out AUC of the
    statistic alone, ranked by how far that AUC is from 0.5 (the best single tell first)."""
    rows = []
    for name, values in test.items():
        a = realism.auc(values, y)
        both = np.concatenate([train[name], values])
        labels = np.concatenate([train_y, y])
        ph, re = both[labels == 0], both[labels == 1]
        rows.append(
            {
                "statistic": name,
                "phantom_median": _round(np.median(ph)),
                "real_median": _round(np.median(re)),
                "phantom_iqr": [_round(v) for v in np.percentile(ph, [25, 75])],
                "real_iqr": [_round(v) for v in np.percentile(re, [25, 75])],
                "heldout_auc": round(a, 3),
                "separation": round(abs(a - 0.5) * 2, 3),
                "clip_normalised": not name.startswith("raw_"),
            }
        )
    return sorted(rows, key=lambda r: -float(r["separation"]))


def _round(v: float) -> float:
    v = float(v)
    return round(v, 4) if abs(v) < 10 else round(v, 2)


def logistic(
    train: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    train_y: np.ndarray,
    names: list[str],
) -> tuple[np.ndarray, dict[str, float]]:
    """Scores of a logistic regression on the standardised statistics ``names``, and its
    weights (per standard deviation of each statistic; positive: more real)."""
    xtr = np.column_stack([train[n] for n in names])
    xte = np.column_stack([test[n] for n in names])
    mean, std = xtr.mean(0), np.maximum(xtr.std(0), 1e-12)
    weights, bias = realism.fit_logistic((xtr - mean) / std, train_y)
    order = np.argsort(-np.abs(weights))
    return ((xte - mean) / std) @ weights + bias, {
        names[i]: round(float(weights[i]), 3) for i in order
    }


def spectrum_figures(train: Clips, test: Clips) -> dict[str, Any]:
    """Mean radially averaged power spectra (each clip's normalised to sum 1) in octave-wide
    bands, phantom vs real, and the ratio in dB (positive: real has more there)."""
    boxes = np.concatenate([train.boxes, test.boxes])
    labels = np.concatenate([train.labels, test.labels])
    freqs, power = realism.radial_power(realism.standardise(boxes))
    edges = [0.0, 0.03125, 0.0625, 0.125, 0.25, 0.51]
    bands = []
    for lo, hi in itertools.pairwise(edges):
        share = realism.band_fraction(freqs, power, lo, hi)
        ph, re = float(share[labels == 0].mean()), float(share[labels == 1].mean())
        bands.append(
            {
                "cycles_per_px": [lo, min(hi, 0.5)],
                "period_px": [round(1 / min(hi, 0.5), 1), round(1 / lo, 1) if lo else None],
                "phantom_share": _round(ph),
                "real_share": _round(re),
                "real_over_phantom_db": round(10 * np.log10(re / ph), 2),
            }
        )
    ph_mean, re_mean = power[labels == 0].mean(0), power[labels == 1].mean(0)
    return {
        "bands": bands,
        "per_radius": {
            "cycles_per_px": [round(float(f), 4) for f in freqs],
            "real_over_phantom_db": [round(float(v), 2) for v in 10 * np.log10(re_mean / ph_mean)],
        },
    }


def histogram_figures(train: Clips, test: Clips) -> dict[str, Any]:
    """Pooled grey-level histograms, raw (display grey-scale 0–255, what windowing leaves) and
    per-clip normalised (what the CNN sees), with their Jensen–Shannon divergence."""
    boxes = np.concatenate([train.boxes, test.boxes])
    labels = np.concatenate([train.labels, test.labels])
    out: dict[str, Any] = {}
    for name, values, edges in (
        ("raw_0_255", boxes.astype(np.float64), np.linspace(0, 256, 17)),
        ("clip_normalised", realism.standardise(boxes), np.linspace(-3, 3, 13)),
    ):
        ph = realism.histogram(values[labels == 0], edges)
        re = realism.histogram(values[labels == 1], edges)
        out[name] = {
            "bin_edges": [round(float(e), 2) for e in edges],
            "phantom": [round(float(v), 4) for v in ph],
            "real": [round(float(v), 4) for v in re],
            "js_divergence_bits": round(realism.js_divergence(ph, re), 4),
        }
    return out


def dip_figures(features: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """Share of clips whose profile along the bone shows 0, 1, 2, 3+ dips (joint space, and
    in children the growth plate) half a clip spread deep or more."""
    counts = np.minimum(features["profile_dips"].astype(int), 3)
    return {
        kind: [round(float(np.mean(counts[labels == y] == k)), 3) for k in range(4)]
        for kind, y in (("phantom", 0), ("real", 1))
    }


def montage(train: Clips, test: Clips, path: Path, rng: np.random.Generator) -> str:
    """16 phantom (left) and 16 real (right) clips, 4× enlarged, into ``path`` under /tmp."""
    resolved = path.resolve()

    def grid(boxes: np.ndarray) -> np.ndarray:
        tiles = [cv2.resize(b, (192, 192), interpolation=cv2.INTER_NEAREST) for b in boxes]
        return np.vstack([np.hstack(tiles[r * 4 : r * 4 + 4]) for r in range(4)])

    phantom = test.boxes[test.labels == 0]
    real = test.boxes[test.labels == 1]
    picked = [b[rng.choice(len(b), 16, replace=len(b) < 16)] for b in (phantom, real)]
    sheet = np.hstack([grid(picked[0]), np.full((768, 24), 255, np.uint8), grid(picked[1])])
    resolved.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(resolved), sheet)
    return str(resolved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared/real/dha")
    parser.add_argument("--phantoms", type=int, default=25, help="phantoms per seed (20 clips)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--montage", type=Path, default=Path("/tmp/realism_gap_montage.png"))
    args = parser.parse_args()
    if args.montage.resolve().is_relative_to(ROOT.resolve()):
        parser.error(f"--montage {args.montage}: real crops never go into the repository")
    landmarks = args.real / "landmarks.csv"
    if not landmarks.is_file():
        print(json.dumps({"benchmark": "realism_gap", "skipped": f"{landmarks} not found"}))
        return
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    train, test = load(args)

    def counts(c: Clips) -> dict[str, int]:
        return {
            "phantom_clips": int((c.labels == 0).sum()),
            "phantom_images": len(set(c.images[c.labels == 0])),
            "phantom_healthy_clips": int((c.healthy & (c.labels == 0)).sum()),
            "real_clips": int((c.labels == 1).sum()),
            "real_images": len(set(c.images[c.labels == 1])),
        }

    f_train = realism.clip_features(train.boxes)
    f_test = realism.clip_features(test.boxes)
    names = list(f_train)
    gap: dict[str, Any] = {}
    variants: dict[str, Change] = {
        "cnn": lambda b, _y: b,
        "cnn_blurred_sigma1px": lambda b, _y: blurred(b),
        "cnn_equalised_histogram": lambda b, _y: equalised(b),
        "cnn_layout_only_8px_blocks": lambda b, _y: layout(b),
        "cnn_phantom_blurred_noised_histogram_matched": matcher(
            train.boxes[train.labels == 1], args.seed
        ),
    }
    for name, change in variants.items():
        x_train = change(train.boxes, train.labels)
        net = train_cnn(x_train, train.labels, args.epochs, args.seed)
        scores = cnn_scores(net, change(test.boxes, test.labels))
        gap[name] = rated(scores, test, rng, args.bootstrap)
    weights: dict[str, dict[str, float]] = {}
    for name, chosen in (
        ("logistic", names),
        ("logistic_clip_normalised", [n for n in names if not n.startswith("raw_")]),
    ):
        scores, weights[name] = logistic(f_train, f_test, train.labels, chosen)
        gap[name] = rated(scores, test, rng, args.bootstrap)
    ranked = feature_table(f_train, f_test, train.labels, test.labels)
    labels = np.concatenate([train.labels, test.labels])
    both = {n: np.concatenate([f_train[n], f_test[n]]) for n in names}
    figures = {
        "benchmark": "realism_gap",
        "real": str(args.real),
        "phantom_seeds": {"train": TRAIN_SEED, "test": TEST_SEED},
        "train": counts(train),
        "test": counts(test),
        "gap_auc": gap,
        "statistics_ranked": ranked,
        "statistics_separating_over_half": sum(r["separation"] > 0.5 for r in ranked),
        "logistic_weights_per_sd": weights["logistic_clip_normalised"],
        "histograms": histogram_figures(train, test),
        "spectrum": spectrum_figures(train, test),
        "profile_dips_0_1_2_3plus": dip_figures(both, labels),
        "montage": montage(train, test, args.montage, rng),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()

"""The model on real hand radiographs with landmarks (the Digital Hand Atlas set); prints JSON.

    python benchmarks/real.py [FOLDER] [--split validation|train|all] [--model DIR]
                              [--gallery FILE.png]

FOLDER (default ``../shared/real/dha`` beside the repository) holds ``landmarks.csv`` and the
pictures. Its hands are healthy left hands without pixel spacing: the figures say how many
joints the model finds with the right name and which grades it gives where every grade should
be 0 (DESIGN.md, Real data). The scorer is told no laterality, as a scanned film tells it
none; side agreement is measured against the atlas's left. The fixed validation split is the
default, so figures stay comparable while models are trained on the other images. Without the
folder it prints ``{"skipped": reason}`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.pipeline import Scorer
from worker.lab.evaluate_landmarks import SPLITS, evaluate_landmark_images, load_landmarked

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT.parent / "shared/real/dha")
    parser.add_argument("--split", choices=SPLITS, default="validation")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--gallery", type=Path, default=None)
    args = parser.parse_args()
    landmarks = args.folder / "landmarks.csv"
    if not landmarks.is_file():
        print(json.dumps({"benchmark": "real", "skipped": f"{landmarks} not found"}, indent=1))
        return
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    images = load_landmarked(landmarks, args.folder, args.split)
    scorer = Scorer.load(args.model)
    figures = evaluate_landmark_images(
        scorer, images, args.split, laterality="", hand_side="L", gallery=args.gallery
    )
    print(json.dumps({"benchmark": "real", "folder": str(args.folder), **figures}, indent=1))


if __name__ == "__main__":
    main()

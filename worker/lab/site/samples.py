"""A site's labels turned into training targets, and targets with their clips into samples.

Per kind (JSN, erosion), a joint whose grade is not labelled is left out of that kind's
training, never taken as 0: RA2-DREAM has no JSN for the thumb IP, and a 0 there would teach
the JSN network that every thumb is healthy.

Several readers, two ways (the card records which):
- ``mean``: one target per joint, the readers' mean grade rounded half up (readers who did not
  grade that kind are not counted); the default, because a consensus is what the test figures
  compare with, and one reader's habits do not pull the network twice as hard as another's.
- ``each``: every read is a sample of its own, so disagreement stays in the training targets
  (a soft label by repetition).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scoring.cnn import Task
from scoring.training.cnn import CLIP_SIZE
from worker.lab.site.folder import JointLabel

READERS = ("mean", "each")
READER_NOTES = {
    "mean": "one target per joint: the readers' mean grade, rounded half up, over the readers "
    "who graded that kind",
    "each": "every reader's grade is a training sample of its own",
}
Key = tuple[str, str]  #: (image_id, label such as ``L_MCP2``)
NOT_LABELLED = -1


@dataclass(frozen=True)
class JointTarget:
    image_id: str
    patient: str
    label: str  #: e.g. ``L_MCP2``
    jsn: int | None  #: None: not labelled
    erosion: int | None
    readers: int  #: how many reads made it

    @property
    def key(self) -> Key:
        return (self.image_id, self.label)


def _mean_grade(values: Sequence[int | None]) -> int | None:
    graded = [v for v in values if v is not None]
    if not graded:
        return None
    return math.floor(sum(graded) / len(graded) + 0.5)


def _grouped(labels: Iterable[JointLabel]) -> dict[Key, list[JointLabel]]:
    groups: dict[Key, list[JointLabel]] = defaultdict(list)
    for label in labels:
        groups[(label.image_id, label.label)].append(label)
    return groups


def consensus(labels: Iterable[JointLabel]) -> dict[Key, tuple[int | None, int | None]]:
    """Each joint's readers' mean grades (rounded half up): the truth of the test figures."""
    return {
        key: (_mean_grade([r.jsn for r in reads]), _mean_grade([r.erosion for r in reads]))
        for key, reads in _grouped(labels).items()
    }


def joint_targets(labels: Iterable[JointLabel], readers: str = "mean") -> list[JointTarget]:
    """The training targets of ``labels``; a joint with neither grade labelled gives none."""
    if readers not in READERS:
        raise ValueError(f"readers must be one of {', '.join(READERS)}, not {readers!r}")
    targets = []
    for key, reads in sorted(_grouped(labels).items()):
        if readers == "mean":
            grades = [
                (_mean_grade([r.jsn for r in reads]), _mean_grade([r.erosion for r in reads]))
            ]
        else:
            grades = [(r.jsn, r.erosion) for r in sorted(reads, key=lambda r: r.reader)]
        for jsn, erosion in grades:
            if jsn is None and erosion is None:
                continue
            count = len(reads) if readers == "mean" else 1
            targets.append(JointTarget(key[0], reads[0].patient, key[1], jsn, erosion, count))
    return targets


def label_positions(labels: Iterable[JointLabel]) -> dict[Key, tuple[float, float] | None]:
    """Each labelled joint's centre where the site gives one (readers' mean), else None: the
    detector will be asked."""
    positions: dict[Key, tuple[float, float] | None] = {}
    for key, reads in _grouped(labels).items():
        points = [(r.x, r.y) for r in reads if r.x is not None and r.y is not None]
        positions[key] = (
            (float(np.mean([p[0] for p in points])), float(np.mean([p[1] for p in points])))
            if points
            else None
        )
    return positions


@dataclass
class Samples:
    """Clips with their grades; a grade NOT_LABELLED (-1) is not in that kind's training."""

    keys: list[Key]
    clips: np.ndarray  #: N × CLIP_SIZE × CLIP_SIZE uint8, with context
    jsn: np.ndarray  #: int64
    erosion: np.ndarray  #: int64

    def task(self, task: Task) -> tuple[np.ndarray, np.ndarray, list[Key]]:
        """The clips, grades and keys of the samples labelled for ``task``."""
        grades = self.jsn if task == "jsn" else self.erosion
        keep = np.flatnonzero(grades != NOT_LABELLED)
        return self.clips[keep], grades[keep], [self.keys[i] for i in keep]

    def unique_clips(self) -> np.ndarray:
        """One clip per joint (``each`` repeats a joint's clip once per reader)."""
        first = {key: i for i, key in reversed(list(enumerate(self.keys)))}
        return self.clips[sorted(first.values())]

    def counts(self) -> dict[str, int]:
        return {
            "joints": len(set(self.keys)),
            "jsn": int(np.sum(self.jsn != NOT_LABELLED)),
            "erosion": int(np.sum(self.erosion != NOT_LABELLED)),
        }


def build_samples(targets: Iterable[JointTarget], clips: Mapping[Key, np.ndarray]) -> Samples:
    """The samples of the targets whose joint has a clip (a joint not found has none)."""
    chosen = [t for t in targets if t.key in clips]
    stack = (
        np.stack([clips[t.key] for t in chosen])
        if chosen
        else np.zeros((0, CLIP_SIZE, CLIP_SIZE), np.uint8)
    )
    return Samples(
        [t.key for t in chosen],
        stack,
        np.array([NOT_LABELLED if t.jsn is None else t.jsn for t in chosen], np.int64),
        np.array([NOT_LABELLED if t.erosion is None else t.erosion for t in chosen], np.int64),
    )

"""The plain result structure that the result objects (SR, overlay SC, GSPS) are built from.

dicom_io knows nothing of the scoring code: the worker fills these from the scorer's output.

A joint the model will not grade (unlike the images it was trained on, or too unsure) keeps its
place and box but has no grades: ``assessable`` is False, ``jsn``/``erosion`` are None and
``reason`` says why. The totals cover the assessable joints only, and every object that shows a
total says how many joints it covers, so a total over 14 joints is never read as one over 20.

Where a result object cannot be built, the builders raise :class:`ResultBuildError` (one line,
a short ``reason`` code), never whatever highdicom or pydicom happened to raise, so that the
worker can store the reason on the job and the command line can print it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

JSN_GRADES = 5  #: Sharp/van der Heijde joint space narrowing 0–4
EROSION_GRADES = 6  #: Sharp/van der Heijde erosion 0–5
JOINTS_PER_HAND = 10  #: thumb IP, PIP2–5, MCP1–5 (DESIGN.md, Joint labels)
NOT_FOR_DIAGNOSTIC_USE = (
    "NOT FOR DIAGNOSTIC USE. Scores by an algorithm trained on synthetic phantoms and healthy "
    "hands, not validated on RA radiographs; a site must retrain and validate it on its own "
    "labelled images before clinical use."
)
NOT_ASSESSABLE = "not assessable"


@dataclass(frozen=True)
class JointResult:
    """One found joint on the source image, graded or (``assessable`` False) not."""

    label: str  #: ``{side}_{joint}``, e.g. ``R_PIP3`` (DESIGN.md, Joint labels)
    box: tuple[int, int, int, int]  #: source-image pixels: x (column), y (row), width, height
    jsn: int | None  #: None exactly when the joint is not assessable
    erosion: int | None
    #: JSN_GRADES class probabilities; a joint that is not assessable may have none
    jsn_probs: tuple[float, ...]
    erosion_probs: tuple[float, ...]  #: EROSION_GRADES class probabilities (or none)
    assessable: bool = True
    reason: str = ""  #: why the joint is not assessable, e.g. "model unsure"

    @property
    def side(self) -> str:
        return self.label.split("_", 1)[0]

    @property
    def joint(self) -> str:
        return self.label.split("_", 1)[1]

    @property
    def why_not(self) -> str:
        """The reason as shown to a reader: never empty for a joint that is not assessable."""
        return self.reason or "no reason given"


@dataclass(frozen=True)
class ModelInfo:
    """The algorithm that produced the scores, as it goes into Contributing Equipment."""

    name: str
    version: str
    device_uid: str  #: changes whenever the model is retrained
    manufacturer: str = "rascore"


@dataclass(frozen=True)
class ScoringResult:
    """Everything the result objects say about one source image."""

    source_sop_instance_uid: str
    joints: tuple[JointResult, ...]
    model: ModelInfo

    @property
    def total_jsn(self) -> int:
        """Sum over the assessable joints only: read it with :attr:`joints_scored`."""
        return sum(j.jsn for j in self.joints if j.assessable and j.jsn is not None)

    @property
    def total_erosion(self) -> int:
        return sum(j.erosion for j in self.joints if j.assessable and j.erosion is not None)

    @property
    def joints_scored(self) -> int:
        """How many joints the totals cover."""
        return sum(1 for j in self.joints if j.assessable)

    @property
    def not_assessable(self) -> tuple[JointResult, ...]:
        return tuple(j for j in self.joints if not j.assessable)

    @property
    def sides(self) -> tuple[str, ...]:
        """The hands the joints belong to, in the order first met."""
        return tuple(dict.fromkeys(j.side for j in self.joints))

    @property
    def joints_expected(self) -> int:
        """Ten per hand found: what the totals would cover if every joint were scored."""
        return JOINTS_PER_HAND * len(self.sides)

    def hand_totals(self) -> dict[str, tuple[int, int]]:
        """(JSN, erosion) totals over the assessable joints of each side present, e.g.
        ``{"R": (12, 3)}``; a side whose joints are all not assessable totals (0, 0)."""
        totals: dict[str, tuple[int, int]] = {}
        for joint in self.joints:
            jsn, erosion = totals.get(joint.side, (0, 0))
            if joint.assessable:
                jsn += joint.jsn or 0
                erosion += joint.erosion or 0
            totals[joint.side] = (jsn, erosion)
        return totals

    def hand_joints_scored(self) -> dict[str, int]:
        """How many joints each side's totals cover."""
        counts = dict.fromkeys(self.sides, 0)
        for joint in self.joints:
            counts[joint.side] += joint.assessable
        return counts


class ResultBuildError(ValueError):
    """The SR, overlay SC or GSPS cannot be built; the message is one line that says why.

    ``reason`` is a short stable code for logs, statuses and metrics.
    """

    reason: ClassVar[str] = "build-failed"

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()) or type(self).__name__)


class SourceHeaderError(ResultBuildError):
    """The source lacks what every result must refer to (its SOP Class or Instance UID)."""

    reason = "source-header"


class ResultMismatch(ResultBuildError):
    """The scoring result is not one of this source image, or is not a valid scoring."""

    reason = "result-mismatch"


@contextmanager
def building(kind: str) -> Iterator[None]:
    """Turn anything but a typed refusal raised while building ``kind`` into a
    :class:`ResultBuildError` that names the object and the cause on one line.

    ``ResultBuildError`` and ``dicom_io.reading.UnreadableImage`` (the overlay re-reads the
    source's pixels) pass through; so does ``OSError``, which is the disk's, not the image's.
    """
    from dicom_io.reading import UnreadableImage  # reading is heavy; results stays plain

    try:
        yield
    except (ResultBuildError, UnreadableImage, OSError, MemoryError):
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise ResultBuildError(
            f"cannot build the {kind} from this source: {type(exc).__name__}: {detail}"[:500]
        ) from exc

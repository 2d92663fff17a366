"""The three result objects of a scored image — SR, overlay SC, GSPS — written to a folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dicom_io.overlay import build_overlay_sc
from dicom_io.presentation_state import build_gsps
from dicom_io.sr import build_sr
from scoring.pipeline import Scorer
from worker.scoring_io import ScoredFile, scoring_result


def write_results(scorer: Scorer, scored: ScoredFile, out: Path) -> list[Path]:
    """Write ``{kind}_{source SOP UID hash}.dcm`` for SR, SC and GSPS; returns their paths.

    Names never come straight from a UID in the file (a hostile UID could hold anything).
    """
    result = scoring_result(scorer, scored)
    source = scored.dataset
    key = hashlib.sha256(str(source.SOPInstanceUID).encode()).hexdigest()[:16]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, build in (("sr", build_sr), ("sc", build_overlay_sc), ("gsps", build_gsps)):
        path = out / f"{kind}_{key}.dcm"
        build(source, result).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

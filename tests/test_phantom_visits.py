"""`rascore phantom --visits`: the same patients years apart, their damage never less.

The set is written as a user writes it (the command line, real files, dciodvfy); the
progression model is checked on many patients without drawing a picture.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from scoring.phantom import PhantomConfig, generate_image
from scoring.phantom.visits import DAYS_PER_YEAR, JITTER_DAYS, course, generate_visit_image

RASCORE = str(Path(sys.executable).with_name("rascore"))
SEED, COUNT, VISITS, YEARS = 10, 4, 3, 2.0  # seed 10: patient 0 progresses fast, 1 not at all


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RASCORE, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def visit_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two patients, each hand an image, at three visits two years apart: twelve files."""
    out = tmp_path_factory.mktemp("visits")
    result = run(
        "phantom", "--out", str(out), "--count", str(COUNT), "--seed", str(SEED),
        "--hands", "1", "--visits", str(VISITS), "--years-apart", str(YEARS),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def _truths(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads((root / f"visit-{n}" / "truth.json").read_text()) for n in range(1, VISITS + 1)
    ]


def _datasets(root: Path, truth: dict[str, Any], visit: int) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(root / f"visit-{visit}" / r["file"]) for r in truth["images"]]


def test_each_visit_has_its_files_and_truth_in_the_single_sets_format(visit_set: Path) -> None:
    for number, truth in enumerate(_truths(visit_set), start=1):
        assert truth["generator"]["seed"] == SEED and truth["generator"]["visit"] == number
        assert truth["generator"]["visits"] == VISITS
        assert truth["generator"]["years_apart"] == YEARS
        assert len(truth["images"]) == COUNT
        for record, ds in zip(truth["images"], _datasets(visit_set, truth, number), strict=True):
            assert ds.SOPInstanceUID == record["sop_instance_uid"]
            assert ds.StudyInstanceUID == record["study_instance_uid"]
            assert (ds.PatientID, ds.StudyDate) == (record["patient_id"], record["study_date"])
            assert ds.AccessionNumber == record["accession_number"]
            assert record["visit"] == number and len(record["joints"]) == 10
            assert {"label", "center", "box", "jsn", "erosion"} <= set(record["joints"][0])


def test_same_patient_at_every_visit_each_visit_a_study_of_its_own(visit_set: Path) -> None:
    truths = _truths(visit_set)
    per_patient: dict[str, list[tuple[int, pydicom.Dataset]]] = {}
    for number, truth in enumerate(truths, start=1):
        for ds in _datasets(visit_set, truth, number):
            per_patient.setdefault(str(ds.PatientID), []).append((number, ds))
    assert len(per_patient) == COUNT // 2
    sops = set()
    for images in per_patient.values():
        same = {(str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex) for _, ds in images}
        assert len(same) == 1, same
        studies = {n: {(ds.StudyInstanceUID, ds.AccessionNumber) for m, ds in images if m == n}
                   for n in range(1, VISITS + 1)}  # fmt: skip
        assert all(len(s) == 1 for s in studies.values()), studies  # both hands: one study
        uids = [next(iter(s))[0] for s in studies.values()]
        accessions = [next(iter(s))[1] for s in studies.values()]
        assert len(set(uids)) == VISITS and len(set(accessions)) == VISITS
        sops |= {ds.SOPInstanceUID for _, ds in images}
    assert len(sops) == COUNT * VISITS


def test_visits_are_the_years_apart_jittered_by_weeks(visit_set: Path) -> None:
    def day(text: str) -> dt.date:
        return dt.datetime.strptime(text, "%Y%m%d").date()

    timeline = json.loads((visit_set / "visits.json").read_text())
    step = YEARS * DAYS_PER_YEAR
    for patient in timeline["patients"]:
        dates = [day(v["study_date"]) for v in patient["visits"]]
        gaps = [(b - a).days for a, b in pairwise(dates)]
        assert all(abs(g - step) <= JITTER_DAYS + 1 for g in gaps), gaps
        span = (dates[-1] - dates[0]).days
        assert abs(span - (VISITS - 1) * step) <= (VISITS - 1) * (JITTER_DAYS + 1), span
        assert [v["days_since_first_visit"] for v in patient["visits"]] == [
            (d - dates[0]).days for d in dates
        ]
    for number, truth in enumerate(_truths(visit_set), start=1):
        for ds in _datasets(visit_set, truth, number):
            assert ds.ContentDate == ds.StudyDate


def _scores(truths: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(patient, joint label) → (JSN, erosion) at each visit, in order."""
    scores: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for truth in truths:
        for record in truth["images"]:
            for joint in record["joints"]:
                key = (record["patient_id"], joint["label"])
                scores.setdefault(key, []).append((joint["jsn"], joint["erosion"]))
    return scores


def test_no_joint_ever_heals_and_the_damage_grows_somewhere(visit_set: Path) -> None:
    scores = _scores(_truths(visit_set))
    assert len(scores) == COUNT // 2 * 20
    grew = 0
    for key, series in scores.items():
        assert len(series) == VISITS
        for (jsn, ero), (jsn2, ero2) in pairwise(series):
            assert jsn2 >= jsn and ero2 >= ero, (key, series)
            grew += (jsn2, ero2) != (jsn, ero)
    assert grew >= 3
    timeline = json.loads((visit_set / "visits.json").read_text())
    courses = {p["course"]: p for p in timeline["patients"]}
    assert set(courses) == {"fast", "none"}
    totals = {c: [v["jsn_total"] + v["erosion_total"] for v in p["visits"]]
              for c, p in courses.items()}  # fmt: skip
    assert len(set(totals["none"])) == 1
    assert totals["fast"][0] < totals["fast"][1] < totals["fast"][2]
    # visits.json's totals are the truth files' sums
    for patient in timeline["patients"]:
        for n, visit in enumerate(patient["visits"]):
            mine = [s[n] for (p, _), s in scores.items() if p == patient["patient_id"]]
            assert visit["jsn_total"] == sum(j for j, _ in mine)
            assert visit["erosion_total"] == sum(e for _, e in mine)


def test_the_files_pass_dciodvfy(
    visit_set: Path, assert_dciodvfy_clean: Callable[[Path | str], str]
) -> None:
    files = sorted(visit_set.glob("visit-*/*.dcm"))
    assert len(files) == COUNT * VISITS
    for path in files:
        assert_dciodvfy_clean(path)


def test_the_same_seed_gives_the_same_set_byte_for_byte(tmp_path: Path) -> None:
    for name in ("a", "b"):
        args = ["--count", "1", "--seed", "4", "--visits", "2", "--years-apart", "1"]
        result = run("phantom", "--out", str(tmp_path / name), *args)
        assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 5  # two images, two truth.json, visits.json
    for path in files:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes(), path


def test_a_follow_up_keeps_the_bones_and_the_first_visits_scores() -> None:
    config = PhantomConfig(hands=1)
    patient = course(7, 0, 2, 3.0, config)
    first, later = (generate_visit_image(7, 0, n, patient, config) for n in (1, 2))
    assert first.visit is not None and later.visit is not None
    assert (first.visit.number, later.visit.number, first.visit.days) == (1, 2, 0)
    for a, b in zip(first.joints, later.joints, strict=True):
        assert a.label == b.label
        assert (a.width_mm, a.normal_gap_mm) == (b.width_mm, b.normal_gap_mm)
    assert not np.array_equal(first.pixels, later.pixels)  # another day, another exposure
    single = generate_image(7, 0, config)
    assert [(j.label, j.jsn, j.erosion) for j in single.joints] == [
        (j.label, j.jsn, j.erosion) for j in first.joints
    ]


def test_the_progression_model_over_many_patients() -> None:
    config = PhantomConfig()
    courses = [course(3, p, 4, 1.5, config) for p in range(150)]
    kinds = {c.course for c in courses}
    assert kinds == {"none", "slow", "fast"}
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    for c in courses:
        assert len(c.scores) == 4 and c.days[0] == 0
        for before, after in pairwise(c.scores):
            for s, t in zip(before, after, strict=True):
                assert (s.side, s.name) == (t.side, t.name)
                assert s.jsn <= t.jsn <= 4 and s.erosion <= t.erosion <= 5
        change = sum(t.jsn + t.erosion - s.jsn - s.erosion
                     for s, t in zip(c.scores[0], c.scores[-1], strict=True))  # fmt: skip
        rates[c.course].append(change / (c.days[-1] / DAYS_PER_YEAR))
    assert max(rates["none"]) == 0
    assert 0 < np.mean(rates["slow"]) < 3.5
    assert np.mean(rates["fast"]) >= 4.0  # rapid radiographic progression, ceilings aside
    assert sum(k == "fast" for k in (c.course for c in courses)) < len(courses) / 2


#: Pixel hashes of single phantoms drawn before visits existed: a follow-up set must leave the
#: single set alone. A change here means the generator or numpy's arithmetic changed the
#: pixels; make it on purpose and record the new hashes.
SINGLE_IMAGE_SHA256 = {
    (7, 0, 2): "03bc4f1b16f0f9da4d94ab802f498375765a695cb9c1c2a895c041a36bae5787",
    (11, 1, 1): "3a17f64b36723b70a7ea833318e9b081e555547cfbea494f4ca836c6ca9a681a",
}


@pytest.mark.parametrize("seed, index, hands", sorted(SINGLE_IMAGE_SHA256))
def test_a_single_visit_draws_the_pixels_it_always_did(seed: int, index: int, hands: int) -> None:
    image = generate_image(seed, index, PhantomConfig(hands=hands))  # type: ignore[arg-type]
    assert image.visit is None
    digest = hashlib.sha256(image.pixels.tobytes()).hexdigest()
    assert digest == SINGLE_IMAGE_SHA256[(seed, index, hands)]


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--visits", "0"], "--visits"),
        (["--visits", "21"], "--visits"),
        (["--visits", "2", "--years-apart", "0"], "--years-apart"),
        (["--visits", "2", "--format", "ra2dream"], "--visits"),
    ],
)
def test_bad_visit_options_exit_2_with_one_line_reason(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    result = run("phantom", "--out", str(tmp_path / "x"), *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and reason in lines[0], result.stderr

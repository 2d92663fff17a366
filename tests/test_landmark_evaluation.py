"""Evaluation on landmarked pictures: the metrics on hand-made predictions, and
``rascore evaluate --landmarks`` on phantoms written in the Digital Hand Atlas format."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from landmark_fixture import FIXTURE_IMAGES, write_dha_fixture

from scoring.evaluation.landmark_match import HandLandmarks, Prediction, joint_name, match_image
from scoring.evaluation.landmarks import bootstrap_rate, evaluate_landmarks
from worker.lab.evaluate_landmarks import load_landmarked, sheet_size
from worker.lab.real_images import real_split

RASCORE = str(Path(sys.executable).with_name("rascore"))

# A hand drawn on graph paper: fingers 2–5 at x = 100…400, MCPs at y = 500, PIPs at y = 300
# (so the hand scale is 200 px and the tolerance 50 px), DIPs at y = 170; the thumb apart.
JOINTS = {
    **{f"MCP{k}": (100.0 * (k - 1), 500.0) for k in range(2, 6)},
    **{f"PIP{k}": (100.0 * (k - 1), 300.0) for k in range(2, 6)},
    "MCP1": (600.0, 560.0),
    "IP": (650.0, 400.0),
}
DIPS = {f"DIP{k}": (100.0 * (k - 1), 170.0) for k in range(2, 6)}
SCALE, TOLERANCE = 200.0, 50.0


def hand(side: str = "", spacing_mm: float | None = None, image_id: str = "a") -> HandLandmarks:
    return HandLandmarks(image_id, JOINTS, DIPS, side, spacing_mm)


def at(
    name: str,
    dx: float = 0.0,
    dy: float = 0.0,
    label: str | None = None,
    jsn: int | None = 0,
    erosion: int | None = 0,
    assessable: bool = True,
) -> Prediction:
    """A prediction at the landmark ``name`` (moved by dx, dy), labelled ``label``."""
    x, y = {**JOINTS, **DIPS}[name]
    return Prediction(label or f"L_{name}", (x + dx, y + dy), jsn, erosion, assessable)


def all_right() -> list[Prediction]:
    return [at(name) for name in JOINTS]


def test_names_are_compared_without_side() -> None:
    assert joint_name("L_PIP3") == joint_name("R_PIP3") == joint_name("PIP3") == "PIP3"
    assert hand().scale() == pytest.approx(SCALE)


def test_every_joint_at_its_landmark_is_found_with_no_error() -> None:
    result = evaluate_landmarks([(hand(), all_right())])
    assert (result.overall.joints, result.overall.found, result.overall.missed) == (10, 10, 0)
    assert result.overall.found_rate == 1.0
    assert result.overall.error_fraction.median == 0.0
    assert {t: f.joints for t, f in result.per_type.items()} == {"PIP": 4, "IP": 1, "MCP": 5}
    assert result.predictions.right == 10 and result.predictions.mislabelled == 0
    assert result.overall.side is None  # no side known: no side agreement claimed
    assert result.overall.error_mm.n == 0  # no spacing: no mm


def test_a_pip_labelled_mcp_is_mislabelled_and_counted_as_a_confusion() -> None:
    predictions = [*all_right(), at("PIP2", label="L_MCP2")]
    predictions = [p for p in predictions if p.label != "L_PIP2" or p.centre != JOINTS["PIP2"]]
    result = evaluate_landmarks([(hand(), predictions)])
    pip = result.per_type["PIP"]
    assert (pip.found, pip.mislabelled, pip.missed) == (3, 1, 0)
    # the MCP2 landmark is still found by its own prediction
    assert result.per_type["MCP"].found == 5
    assert result.predictions.mislabelled == 1
    assert result.predictions.confusions == {"PIP2->MCP2": 1}


def test_a_dip_labelled_pip_is_a_confusion_and_the_pip_is_missed() -> None:
    predictions = [p for p in all_right() if joint_name(p.label) != "PIP3"]
    predictions.append(at("DIP3", label="L_PIP3"))
    match = match_image(hand(), predictions)
    outcome = {o.name: o.outcome for o in match.joints}
    assert outcome["PIP3"] == "missed"  # the DIP lies 130 px away, beyond the tolerance
    assert match.predictions[-1].kind == "mislabelled"
    assert match.predictions[-1].landmark == "DIP3"
    result = evaluate_landmarks([(hand(), predictions)])
    assert result.predictions.confusions == {"DIP3->PIP3": 1}
    assert result.per_type["PIP"].missed == 1


def test_nothing_predicted_misses_everything() -> None:
    result = evaluate_landmarks([(hand(), [])])
    assert (result.overall.found, result.overall.missed) == (0, 10)
    assert result.overall.found_rate == 0.0
    assert result.overall.grades.rate_2_or_more is None  # nothing graded: no rate


def test_the_tolerance_is_a_quarter_of_the_hand_scale_inclusive() -> None:
    inside = [at("PIP4", dx=TOLERANCE * math.cos(0.3), dy=TOLERANCE * math.sin(0.3))]
    outside = [at("PIP4", dy=TOLERANCE + 0.01)]  # towards MCP4, 150 px on
    found = match_image(hand(), inside)
    assert next(o for o in found.joints if o.name == "PIP4").outcome == "found"
    assert found.tolerance == pytest.approx(TOLERANCE)
    assert next(o.error_fraction for o in found.joints if o.name == "PIP4") == pytest.approx(0.25)
    missed = match_image(hand(), outside)
    assert next(o for o in missed.joints if o.name == "PIP4").outcome == "missed"
    assert missed.predictions[0].kind == "unmatched"


def test_the_nearest_prediction_of_the_name_counts_and_a_second_is_a_duplicate() -> None:
    predictions = [at("MCP3", dx=30), at("MCP3", dx=-10, label="R_MCP3")]
    match = match_image(hand(), predictions)
    mcp3 = next(o for o in match.joints if o.name == "MCP3")
    assert mcp3.prediction == 1 and mcp3.error_fraction == pytest.approx(10 / SCALE)
    assert [p.kind for p in match.predictions] == ["duplicate", "right"]


def test_localisation_error_in_mm_and_side_agreement_when_known() -> None:
    predictions = [at(n, dy=20) for n in JOINTS]
    predictions[0] = Prediction(
        "R_" + joint_name(predictions[0].label), predictions[0].centre, 0, 0
    )
    result = evaluate_landmarks([(hand(side="L", spacing_mm=0.1), predictions)])
    assert result.overall.found == 10  # a wrong side does not make a joint wrong
    assert result.overall.error_fraction.median == pytest.approx(0.1)
    assert result.overall.error_mm.median == pytest.approx(2.0)
    assert result.overall.side is not None
    assert (result.overall.side.joints, result.overall.side.agree) == (10, 9)


def test_grades_of_healthy_joints_and_abstentions() -> None:
    changed = {
        "PIP2": at("PIP2", jsn=2, erosion=0),
        "PIP3": at("PIP3", jsn=1, erosion=3),
        "PIP4": at("PIP4", jsn=None, erosion=None, assessable=False),
    }
    predictions = [changed.get(name, at(name)) for name in JOINTS]
    result = evaluate_landmarks([(hand(), predictions)])
    grades = result.overall.grades
    assert (grades.assessable, grades.not_assessable) == (9, 1)
    assert grades.abstention_rate == pytest.approx(0.1)
    assert grades.jsn == {0: 7, 1: 1, 2: 1}
    assert grades.erosion == {0: 8, 3: 1}
    assert grades.graded_2_or_more == 2
    assert grades.rate_2_or_more == pytest.approx(2 / 9)
    assert result.per_type["MCP"].grades.rate_2_or_more == 0.0


def test_bootstrap_interval_over_images() -> None:
    assert bootstrap_rate([5, 5, 5], [10, 10, 10]) == pytest.approx(
        bootstrap_rate([5, 5, 5], [10, 10, 10])
    )
    same = bootstrap_rate([5, 5, 5], [10, 10, 10])
    assert (same.low, same.high) == (0.5, 0.5)  # no spread between images, no width
    spread = bootstrap_rate([0, 10, 2, 9, 5, 7], [10] * 6)
    assert spread.low is not None and spread.high is not None
    assert spread.low < 33 / 60 < spread.high
    assert spread.low >= 0.0 and spread.high <= 1.0
    assert bootstrap_rate([], []).low is None


def test_images_without_a_hand_scale_are_left_out_and_figures_are_json() -> None:
    no_scale = HandLandmarks("b", {"IP": (1.0, 1.0)})
    result = evaluate_landmarks([(hand(), all_right()), (no_scale, [])])
    assert result.images == 1 and result.images_without_scale == ("b",)
    figures = json.loads(json.dumps(result.as_dict()))
    assert figures["overall"]["found_rate_ci"] == {"low": 1.0, "high": 1.0}
    assert set(figures["per_type"]) == {"PIP", "IP", "MCP"}
    assert "matches" not in figures


# --- the command line on phantoms written in the DHA format ---------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RASCORE, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dha_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_dha_fixture(tmp_path_factory.mktemp("dha"))


def test_evaluate_landmarks_json_and_gallery(dha_set: tuple[Path, Path], tmp_path: Path) -> None:
    landmarks, images = dha_set
    gallery = tmp_path / "sheet.png"
    done = run(
        "evaluate",
        *("--landmarks", str(landmarks), "--images", str(images)),
        *("--json", "--gallery", str(gallery), "--hand-side", "L"),
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["images"] == len(FIXTURE_IMAGES) == 3
    assert figures["split"] == "all" and figures["model"]["version"]
    assert set(figures["per_type"]) == {"PIP", "IP", "MCP"}
    joints = {"PIP": 12, "IP": 3, "MCP": 15}
    for kind, f in figures["per_type"].items():
        assert f["joints"] == joints[kind]
        assert f["found"] + f["mislabelled"] + f["missed"] == f["joints"]
        assert set(f["grades"]) >= {"jsn", "erosion", "abstention_rate", "rate_2_or_more_ci"}
    overall = figures["overall"]
    assert overall["joints"] == 30
    assert overall["found"] == sum(f["found"] for f in figures["per_type"].values())
    # through a PNG without pixel spacing: the cascade of 1.0.0+138cadad1276 found 11 of the
    # 30; the keypoint network of 1.1.0 finds all the landmarked joints
    assert overall["found"] >= 27, overall
    assert overall["error_fraction"]["median"] < 0.25
    assert overall["side"]["joints"] == overall["found"]  # every found joint has a side
    p = figures["predictions"]
    assert p["total"] == p["right"] + p["mislabelled"] + p["duplicate"] + p["unmatched"]
    assert p["right"] == overall["found"]
    assert figures["seconds_per_image"] > 0
    sheet = cv2.imread(str(gallery))
    assert sheet is not None and sheet.shape[:2] == sheet_size(3)


def test_evaluate_landmarks_split_and_readable_table(dha_set: tuple[Path, Path]) -> None:
    landmarks, images = dha_set
    args = ("--landmarks", str(landmarks), "--images", str(images), "--split", "validation")
    done = run("evaluate", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # the table is a message: stderr
    # ph-single-1 and ph-single-3 fall in the fixed validation split, ph-both-0 does not
    assert "2 images (validation)" in done.stderr
    assert "| landmarked joints | 20 |" in done.stderr
    assert "| figure | all | PIP | IP | MCP |" in done.stderr
    assert "found, right name" in done.stderr


def test_evaluate_landmarks_bad_input_exits_2(dha_set: tuple[Path, Path], tmp_path: Path) -> None:
    _, images = dha_set
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("image,landmark,name,x,y\nph-single-1,nineteen,IP,1,2\n")
    for args in (
        ("--landmarks", str(tmp_path / "no.csv"), "--images", str(images)),
        ("--landmarks", str(bad_csv), "--images", str(images)),
    ):
        done = run("evaluate", *args, "--json")
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "rascore: error:" in done.stderr


def test_landmarked_input_is_checked_before_any_model_is_loaded(
    dha_set: tuple[Path, Path], tmp_path: Path
) -> None:
    landmarks, images = dha_set
    assert [i.image_id for i in load_landmarked(landmarks, images, "all")] == sorted(
        i.image_id for i in FIXTURE_IMAGES
    )
    split = {i.image_id: real_split(i.image_id) for i in FIXTURE_IMAGES}
    train = [i.image_id for i in load_landmarked(landmarks, images, "train")]
    assert train == sorted(k for k, v in split.items() if v == "train")
    with pytest.raises(ValueError, match="split"):
        load_landmarked(landmarks, images, "test")
    orphan = tmp_path / "orphan.csv"
    orphan.write_text("image,landmark,name,x,y\nnot-there,19,IP,1,2\n")
    with pytest.raises(ValueError, match="not-there"):
        load_landmarked(orphan, images, "all")

"""Agreement metrics against cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from scoring.evaluation.metrics import (
    close_agreement,
    confusion_matrix,
    exact_agreement,
    pearson,
    quadratic_weighted_kappa,
    sensitivity_specificity,
)
from scoring.evaluation.scores import ImageComparison, PredictedJoint, TrueJoint, evaluate


def test_exact_and_close_agreement() -> None:
    truth = [0, 1, 2, 3, 4, 2]
    model = [0, 2, 2, 1, 4, 3]
    assert exact_agreement(truth, model) == pytest.approx(3 / 6)  # 0, 2, 4 agree
    assert close_agreement(truth, model) == pytest.approx(5 / 6)  # only 3 vs 1 is off by 2


def test_sensitivity_and_specificity_are_zero_versus_any() -> None:
    truth = [0, 0, 0, 0, 1, 2, 3, 5]
    model = [0, 1, 0, 0, 0, 2, 1, 5]
    # positives (≥1): 4, called positive: 3 → 3/4; negatives: 4, one called positive → 3/4
    sens, spec = sensitivity_specificity(truth, model)
    assert sens == pytest.approx(0.75)
    assert spec == pytest.approx(0.75)
    assert math.isnan(sensitivity_specificity([0, 0], [0, 1])[0])


def test_quadratic_weighted_kappa_by_hand() -> None:
    # 3 classes, truth [0, 1, 2, 2], model [0, 2, 2, 1]
    # O = [[1,0,0],[0,0,1],[0,1,1]]; row sums (1,1,2), column sums (1,1,2), n = 4
    # E = outer / 4 = [[.25,.25,.5],[.25,.25,.5],[.5,.5,1]]
    # W = ((i-j)/2)^2 = [[0,.25,1],[.25,0,.25],[1,.25,0]]
    # sum W·O = .25 + .25 = 0.5; sum W·E = .0625+.5+.0625+.125+.5+.125 = 1.375
    kappa = quadratic_weighted_kappa([0, 1, 2, 2], [0, 2, 2, 1], 3)
    assert kappa == pytest.approx(1 - 0.5 / 1.375)
    assert quadratic_weighted_kappa([0, 1, 2], [0, 1, 2], 3) == pytest.approx(1.0)


def test_confusion_matrix_rows_are_truth() -> None:
    matrix = confusion_matrix([0, 0, 1, 2], [1, 0, 1, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_pearson() -> None:
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def _true(label: str, x: float, jsn: int, erosion: int, kind: str = "PIP") -> TrueJoint:
    return TrueJoint(label, kind, (x, 0.0, 10.0, 10.0), jsn, erosion)


def _pred(label: str, x: float, jsn: int, erosion: int) -> PredictedJoint:
    return PredictedJoint(label, (x, 1.0, 8.0, 8.0), jsn, erosion)


def test_evaluation_counts_detection_identity_and_scores() -> None:
    truth = [
        _true("R_PIP2", 0, 2, 0),
        _true("R_PIP3", 20, 3, 1),
        _true("R_MCP2", 40, 0, 0, "MCP"),
        _true("R_IP", 60, 1, 0, "IP"),
    ]
    predicted = [
        _pred("R_PIP2", 0, 2, 0),  # right place, right label, right scores
        _pred("R_PIP4", 20, 2, 1),  # right place, wrong label, JSN off by one
        _pred("R_MCP2", 40, 0, 1),  # erosion called where there is none
        _pred("R_DIP2", 200, 4, 5),  # nowhere near a scored joint: counts in totals only
    ]  # R_IP missed
    figures = evaluate([ImageComparison(truth, predicted, seconds=0.05)])
    assert figures["detection"]["sensitivity"] == pytest.approx(3 / 4)
    assert figures["detection"]["per_type"] == {"PIP": 1.0, "IP": 0.0, "MCP": 1.0}
    assert figures["detection"]["identity_accuracy"] == pytest.approx(2 / 3)
    assert figures["jsn"]["pea"] == pytest.approx(2 / 3)
    assert figures["jsn"]["pca"] == pytest.approx(1.0)
    assert figures["erosion"]["pea"] == pytest.approx(2 / 3)
    assert figures["erosion"]["specificity"] == pytest.approx(1 / 2)
    assert figures["erosion"]["sensitivity"] == pytest.approx(1.0)
    assert figures["totals"]["jsn"] == {"true": [6], "predicted": [8]}
    assert figures["seconds_per_image"] == pytest.approx(0.05)


def test_not_assessable_joints_are_found_but_left_out_of_the_agreement() -> None:
    truth = [
        _true("R_PIP2", 0, 2, 0),
        _true("R_PIP3", 20, 3, 1),
        _true("R_MCP2", 40, 4, 5, "MCP"),
        _true("R_IP", 60, 1, 0, "IP"),
    ]
    predicted = [
        _pred("R_PIP2", 0, 2, 0),
        _pred("R_PIP3", 20, 0, 0),  # wrong by three grades
        PredictedJoint("R_MCP2", (40, 1.0, 8.0, 8.0), None, None, False, "model unsure"),
        PredictedJoint("R_PIP4", (60, 1.0, 8.0, 8.0), None, None, False, ""),  # wrong label
    ]
    figures = evaluate([ImageComparison(truth, predicted, seconds=0.05)])
    # found and named (or misnamed) like any other joint ...
    assert figures["detection"]["sensitivity"] == 1.0
    assert figures["detection"]["per_type"] == {"PIP": 1.0, "IP": 1.0, "MCP": 1.0}
    assert figures["detection"]["identity_accuracy"] == pytest.approx(3 / 4)
    # ... but only the two graded joints are compared, and counted apart
    assert figures["jsn"]["n"] == figures["erosion"]["n"] == 2
    assert figures["jsn"]["pea"] == pytest.approx(1 / 2)
    assert figures["jsn"]["per_type"]["MCP"]["n"] == 0
    assert figures["not_assessable"] == 2
    assert figures["not_assessable_reasons"] == {"model unsure": 1, "no reason given": 1}
    # totals over the same joints on both sides: the truth leaves out what the model left out
    assert figures["totals"]["jsn"] == {"true": [5], "predicted": [2]}
    assert figures["totals"]["erosion"] == {"true": [1], "predicted": [0]}

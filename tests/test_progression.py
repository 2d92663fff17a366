"""Progression between a patient's studies, computed by hand: the change per joint and in
total over the joints assessable at both times, the rate per year, what is left out."""

from __future__ import annotations

import datetime as dt

import pytest

from dicom_io.study_results import ObjectRef
from worker.jobs.progression import (
    TimePoint,
    compare,
    comparison_from_json,
    comparison_json,
    comparisons,
    years_between,
)


def _point(uid: str, date: str, grades: dict[str, tuple[int, int] | None]) -> TimePoint:
    report = ObjectRef("1.2.840.10008.5.1.4.1.1.88.34", f"{uid}.9", f"{uid}.8", uid)
    return TimePoint(uid, dt.date.fromisoformat(date), report, grades)


FIRST = _point("1.1", "2020-01-01", {"L_MCP2": (1, 0), "L_MCP3": (0, 0), "L_PIP2": None})
MIDDLE = _point("1.2", "2021-01-01", {"L_MCP2": (2, 1), "L_MCP3": None, "L_PIP2": (1, 0)})
LAST = _point(
    "1.3",
    "2022-07-02",
    {"L_MCP2": (3, 2), "L_MCP3": (1, 1), "L_PIP2": (1, 1), "R_MCP2": (0, 0)},
)


def test_change_counts_only_joints_assessable_at_both_times() -> None:
    c = compare(FIRST, MIDDLE, "previous")
    # L_MCP2: 1,0 -> 2,1; L_MCP3 not assessable now; L_PIP2 not assessable then
    assert [(j.label, j.jsn, j.erosion) for j in c.joints] == [("L_MCP2", 1, 1)]
    assert c.left_out == ("L_PIP2", "L_MCP3")  # in the reports' joint order
    assert (c.jsn, c.erosion, c.total) == (1, 1, 2)
    assert c.years == pytest.approx(366 / 365.25)  # 2020 is a leap year
    assert c.per_year(2) == pytest.approx(2 / (366 / 365.25))


def test_previous_and_first_and_rates() -> None:
    previous, first = comparisons(LAST, [MIDDLE, FIRST])
    assert (previous.against, previous.prior_study_instance_uid) == ("previous", "1.2")
    assert (first.against, first.prior_study_instance_uid) == ("first", "1.1")
    # since 2021-01-01: 547 days; L_MCP2 +1,+1; L_PIP2 0,+1; L_MCP3 then not assessable;
    # R_MCP2 not in the earlier study
    assert previous.years == pytest.approx(547 / 365.25)
    assert {j.label: (j.jsn, j.erosion) for j in previous.joints} == {
        "L_MCP2": (1, 1),
        "L_PIP2": (0, 1),
    }
    assert previous.left_out == ("L_MCP3", "R_MCP2")
    assert (previous.jsn, previous.erosion, previous.total) == (1, 2, 3)
    assert previous.per_year(3) == pytest.approx(3 * 365.25 / 547)
    # since 2020-01-01: 913 days; L_MCP2 +2,+2; L_MCP3 +1,+1; L_PIP2 then not assessable
    assert first.years == pytest.approx(913 / 365.25)
    assert (first.jsn, first.erosion, first.total) == (3, 3, 6)
    assert first.left_out == ("L_PIP2", "R_MCP2")
    assert first.per_year(first.total) == pytest.approx(6 * 365.25 / 913)


def test_no_earlier_study_no_comparison_and_later_ones_ignored() -> None:
    assert comparisons(FIRST, [MIDDLE, LAST]) == ()
    same_day = _point("1.4", "2020-01-01", {"L_MCP2": (4, 4)})
    assert comparisons(FIRST, [same_day]) == ()  # strictly earlier only
    only = comparisons(MIDDLE, [FIRST, LAST])
    assert [c.prior_study_instance_uid for c in only] == ["1.1", "1.1"]  # previous is first


def test_equal_dates_have_no_rate() -> None:
    c = compare(FIRST, _point("1.5", "2020-01-01", {"L_MCP2": (2, 0)}), "previous")
    assert years_between(FIRST.study_date, FIRST.study_date) == 0
    assert c.years == 0 and c.per_year(c.total) is None and c.total == 1


def test_comparison_json_round_trips() -> None:
    previous, _ = comparisons(LAST, [MIDDLE, FIRST])
    data = comparison_json(previous)
    assert data["total"] == {"change": 3, "per_year": round(3 * 365.25 / 547, 6)}
    assert data["joints_compared"] == 2 and data["joints_left_out"] == 2
    assert data["joints"]["L_PIP2"]["erosion"] == 1
    assert comparison_from_json(data) == previous

"""`rascore validate`: every figure against a case computed by hand, then the command end to end
on a phantom site folder with two readers (JSON, and an HTML page that fetches nothing)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from site_fixture import make_site

from scoring.evaluation.agreement import (
    BlandAltman,
    Paired,
    bootstrap_over_images,
    compare,
    differences,
    icc_2_1,
)
from scoring.evaluation.metrics import exact_agreement
from scoring.evaluation.scores import _bootstrap
from worker.lab.site.folder import JointLabel, SiteFolder, SiteImage, open_site
from worker.lab.site.validate import ModelReads, abstention, paired, reader_grades

RASCORE = str(Path(sys.executable).with_name("rascore"))

#: four joints on two images, grades 0–2 (classes = 3)
TINY = Paired.of(
    [
        (0, "PIP", 0, 0),
        (0, "MCP", 1, 2),
        (1, "MCP", 2, 2),
        (1, "IP", 0, 1),
    ],
    classes=3,
)


def test_joint_figures_by_hand() -> None:
    """Differences (compared − reference) 0, +1, 0, +1.
    PEA = 2/4; PCA = 4/4 (every difference within one grade).
    Reference ≥ 1 on joints 2 and 3, both called ≥ 1: sensitivity 2/2. Reference 0 on joints 1
    and 4, called 0 and 1: specificity 1/2.
    κ: observed O = [[1,1,0],[0,0,1],[0,0,1]] (rows reference), n = 4; weights (i−j)²/4;
    Σ w·O = 0.25 + 0.25 = 0.5. Row sums (2,1,1), column sums (1,1,2), E = outer / 4:
    Σ w·E = (0.25·0.5 + 1·1) + (0.25·0.25 + 0.25·0.5) + (1·0.25 + 0.25·0.25) = 1.625;
    κ = 1 − 0.5 / 1.625 = 9/13."""
    block = compare(TINY, draws=0)
    assert block["joints"] == 4 and block["images"] == 2
    assert block["pea"] == 0.5 and block["pca"] == 1.0
    assert block["sensitivity"] == 1.0 and block["specificity"] == 0.5
    assert block["kappa"] == pytest.approx(9 / 13)
    assert block["confusion"] == [[1, 1, 0], [0, 0, 1], [0, 0, 1]]
    assert differences(TINY) == {-2: 0, -1: 0, 0: 2, 1: 2, 2: 0}


def test_per_type_groups_by_hand() -> None:
    """PIP/IP: joints 1 and 4 (0→0, 0→1): PEA 1/2; MCP: joints 2 and 3 (1→2, 2→2): PEA 1/2;
    IP alone: joint 4, PEA 0; PIP alone: joint 1, PEA 1."""
    per_type = compare(TINY, draws=0)["per_type"]
    assert {g: (b["joints"], b["pea"]) for g, b in per_type.items()} == {
        "PIP/IP": (2, 0.5),
        "PIP": (1, 1.0),
        "IP": (1, 0.0),
        "MCP": (2, 0.5),
    }


def test_totals_pearson_icc_bland_altman_by_hand() -> None:
    """Totals reference (1, 2, 3, 4), compared (2, 3, 5, 6), one joint per image.
    Pearson: centred x (−1.5, −0.5, 0.5, 1.5), y (−2, −1, 1, 2); Σxy = 7, Σx² = 5, Σy² = 10;
    r = 7 / √50.
    ICC(2,1): grand mean 3.25; row means 1.5, 2.5, 4, 5 → SSR = 2 · 7.25 = 14.5, MSR = 14.5/3;
    column means 2.5, 4 → SSC = 4 · 1.125 = 4.5 = MSC; SST = 19.5 → SSE = 0.5, MSE = 0.5/3;
    ICC = (MSR − MSE) / (MSR + MSE + 2 (MSC − MSE) / 4) = (14/3) / (43/6) = 28/43.
    Bland–Altman: differences (1, 1, 2, 2): mean 1.5, SD √(1/3); limits 1.5 ± 1.96 · 0.57735."""
    p = Paired.of(
        [(i, "MCP", r, c) for i, (r, c) in enumerate([(1, 2), (2, 3), (3, 5), (4, 6)])], 7
    )
    totals = compare(p, draws=0)["totals"]
    assert totals["reference"] == [1, 2, 3, 4] and totals["compared"] == [2, 3, 5, 6]
    assert totals["pearson"] == pytest.approx(7 / math.sqrt(50))
    assert totals["icc_2_1"] == pytest.approx(28 / 43)
    limits = totals["bland_altman"]
    sd = math.sqrt(1 / 3)
    assert limits["mean_difference"] == pytest.approx(1.5) and limits["sd"] == pytest.approx(sd)
    assert limits["lower"] == pytest.approx(1.5 - 1.96 * sd)
    assert limits["upper"] == pytest.approx(1.5 + 1.96 * sd)
    assert BlandAltman.of([], []).n == 0


def test_icc_matches_shrout_and_fleiss_table() -> None:
    """Shrout & Fleiss (1979), Table 2: six targets, four judges; their ICC(2,1) is 0.29."""
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    assert icc_2_1(ratings) == pytest.approx(0.29, abs=0.005)
    assert math.isnan(icc_2_1([[1, 2]]))  # one subject: no figure


def test_bootstrap_draws_images_as_the_evaluation_does() -> None:
    """The PEA interval is the one scoring.evaluation.scores._bootstrap gives for the same
    per-image (hits, joints): the same draw of images, a joint never drawn without its image."""
    rng = np.random.default_rng(3)
    rows = [(i, "MCP", int(r), int(c)) for i in range(12) for r, c in rng.integers(0, 3, (5, 2))]
    p = Paired.of(rows, 3)
    per_image = [(float(sum(r[2] == r[3] for r in rows if r[0] == i)), 5.0) for i in range(12)]
    ci = bootstrap_over_images(p, {"pea": lambda s: exact_agreement(s.reference, s.compared)})
    assert ci["pea"] == pytest.approx(_bootstrap(per_image))
    assert ci["pea"][0] <= exact_agreement(p.reference, p.compared) <= ci["pea"][1]


def _site(labels: list[JointLabel]) -> SiteFolder:
    images = (SiteImage("A-LH", "images/A-LH.png", "0" * 64, "A", "L"),)
    return SiteFolder(Path("."), images, tuple(labels), (), "d" * 64)


def test_a_joint_not_labelled_is_left_out_never_zero() -> None:
    """Reader r gives IP no JSN (None); the model says JSN 3 there. The IP joint is in no JSN
    figure (one joint pairs, MCP2), but it is in the erosion figures (both graded it)."""
    site = _site(
        [
            JointLabel("A-LH", "A", "L", "IP", "r", None, 1),
            JointLabel("A-LH", "A", "L", "MCP2", "r", 2, 0),
        ]
    )
    reader = reader_grades(site)["r"]
    model = {(0, "L_IP"): (3, 1), (0, "L_MCP2"): (2, 0)}
    jsn = paired(reader, model, "jsn")
    assert len(jsn) == 1 and jsn.totals()[0].tolist() == [2] and jsn.totals()[1].tolist() == [2]
    assert len(paired(reader, model, "erosion")) == 2


def test_abstention_counts_what_the_model_left_out() -> None:
    """Three labelled joints: one graded, one not assessable, one not found; a joint nobody
    labelled (PIP2 with both grades empty) does not count."""
    site = _site(
        [
            JointLabel("A-LH", "A", "L", "MCP2", "r", 1, 0),
            JointLabel("A-LH", "A", "L", "MCP3", "r", 0, 0),
            JointLabel("A-LH", "A", "L", "PIP3", "r", 0, None),
            JointLabel("A-LH", "A", "L", "PIP2", "r", None, None),
        ]
    )
    reads = ModelReads(
        grades={(0, "L_MCP2"): (1, 0)},
        ungraded={(0, "L_MCP3"): "model unsure", (0, "L_PIP3"): "not found"},
    )
    out = abstention(site, reader_grades(site), reads)
    assert out["labelled_joints"] == 3 and out["graded"] == 1 and out["left_out"] == 2
    assert out["rate"] == pytest.approx(2 / 3)
    assert out["reasons"] == {"model unsure": 1, "not found": 1}
    assert out["per_type"]["MCP"] == {"left_out": 1, "labelled": 2, "rate": 0.5}


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    root = make_site(tmp_path_factory.mktemp("site") / "site", patients=2, second_reader=True)
    report = root.parent / "report.html"
    done = subprocess.run(
        [RASCORE, "validate", "--site", str(root), "--json", "--report", str(report),
         "--draws", "200"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), report.read_text(), root


def test_validate_json(validated) -> None:  # type: ignore[no-untyped-def]
    figures, _, root = validated
    site = open_site(root)
    assert figures["format"] == "rascore-site-validation/1"
    assert figures["site"]["digest"] == site.digest and figures["site"]["images"] == 4
    assert figures["site"]["readers"] == {"truth": 40, "second": 40}
    assert "not for diagnostic use" in figures["notice"]
    assert "not validated on patients" in figures["notice"]
    assert figures["model"]["name"] and figures["model"]["version"]
    pairs = [(c["reference"], c["compared"]) for c in figures["comparisons"]]
    assert pairs == [("truth", "model"), ("second", "model"), ("truth", "second")]
    a = figures["abstention"]
    assert a["labelled_joints"] == 40 and a["graded"] + a["left_out"] == 40
    readers = figures["comparisons"][2]
    # the thumb IP has no JSN (None): 9 joints per image pair for JSN, 10 for erosion
    assert readers["jsn"]["joints"] == 36 and readers["erosion"]["joints"] == 40
    # make_site's second reader is one grade above the truth where (image + joint) % 3 == 0
    labels = [lab for lab in site.labels if lab.reader == "truth"]
    second = {(lab.image_id, lab.joint): lab for lab in site.labels if lab.reader == "second"}
    same = [lab.erosion == second[(lab.image_id, lab.joint)].erosion for lab in labels]
    assert readers["erosion"]["pea"] == pytest.approx(sum(same) / 40)
    assert readers["erosion"]["pca"] == 1.0
    for c in figures["comparisons"]:
        for kind in ("jsn", "erosion"):
            block = c[kind]
            assert sum(block["differences"].values()) == block["joints"]
            assert sum(map(sum, block["confusion"])) == block["joints"]
            lo, hi = block["ci95"]["pea"]
            assert lo <= block["pea"] <= hi
            assert set(block["per_type"]) == {"PIP/IP", "PIP", "IP", "MCP"}
    model_vs_truth = figures["comparisons"][0]
    assert model_vs_truth["erosion"]["joints"] == a["graded"]  # left-out joints in no figure
    assert figures["distributions"]["erosion"]["model"].__len__() == 6


def test_validate_html_is_self_contained(validated) -> None:  # type: ignore[no-untyped-def]
    figures, page, _ = validated
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page, re.IGNORECASE)
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    for text in (figures["model"]["version"], figures["site"]["digest"], "not for diagnostic use"):
        assert text in page
    assert "Bland–Altman" in page and "ICC(2,1)" in page and "Fig. 3E" in page


def test_validate_refuses_a_folder_that_is_no_site(tmp_path: Path) -> None:
    done = subprocess.run(
        [RASCORE, "validate", "--site", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "manifest.json" in done.stderr


def test_a_dicom_file_is_read_as_the_node_reads_it_and_a_broken_one_is_counted(
    tmp_path: Path,
) -> None:
    """The same picture as a PNG and as a CR DICOM file gets the same grades; an image that
    cannot be read leaves its labelled joints out as "image unreadable", and the rest goes on."""
    from scoring.pipeline import Scorer
    from worker.lab.real_images import load_picture, wrap_as_cr
    from worker.lab.site.folder import sha256_file, write_manifest, write_tables
    from worker.lab.site.validate import score_site

    root = make_site(tmp_path / "site", patients=1)
    site = open_site(root)
    first = site.images[0]
    dicom = wrap_as_cr(load_picture(site.path(first)), first.hand)
    dicom.save_as(root / "images" / "copy.dcm", enforce_file_format=True)
    (root / "images" / "broken.png").write_bytes(b"not a picture")
    extra = [
        SiteImage(f"{first.image_id}-{n}", f"images/{n}", sha256_file(root / "images" / n),
                  first.patient, first.hand)
        for n in ("copy.dcm", "broken.png")
    ]  # fmt: skip
    copies = [
        JointLabel(im.image_id, lab.patient, lab.hand, lab.joint, lab.reader, lab.jsn, lab.erosion)
        for im in extra
        for lab in site.labels
        if lab.image_id == first.image_id
    ]
    write_tables(root, [*site.labels, *copies], [])
    write_manifest(root, [*site.images, *extra], site.source)
    site = open_site(root)
    reads = score_site(Scorer.load(None), site)
    png, dcm, broken = (site.images.index(im) for im in (first, *extra))
    from_png = {k[1]: v for k, v in reads.grades.items() if k[0] == png}
    assert from_png and from_png == {k[1]: v for k, v in reads.grades.items() if k[0] == dcm}
    assert reads.status["unreadable"] == 1
    assert not any(k[0] == broken for k in reads.grades)
    assert sum(1 for k, why in reads.ungraded.items() if k[0] == broken) == 10
    assert {why for k, why in reads.ungraded.items() if k[0] == broken} == {"image unreadable"}


def test_report_reads_in_headless_chromium(validated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The report as a reader opens it, offline: every plot decodes, the tables and the notice
    are there. (docs/validation-report.png was taken the same way.)"""
    from servers import require

    chromium = require("/usr/bin/chromium", "chromium")
    from playwright.sync_api import sync_playwright

    _, html, _ = validated
    page_file = tmp_path / "report.html"
    page_file.write_text(html)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(page_file.as_uri())
        assert "not for diagnostic use" in page.locator(".notice").inner_text()
        assert page.locator("table").count() >= 4
        images = page.locator("img")
        assert images.count() >= 4
        page.wait_for_function("[...document.images].every(i => i.complete)")
        widths = page.evaluate("[...document.images].map(i => i.naturalWidth)")
        assert all(w > 100 for w in widths), widths
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert (tmp_path / "report.png").stat().st_size > 50_000

"""The results as a radiologist sees them, in real viewers rather than in our own reader.

A phantom is scored by ``rascore score --out`` and stored in Orthanc (with its web viewer and
DICOMweb plugins, Debian's orthanc-webviewer and orthanc-dicomweb) beside the source: Orthanc
Explorer lists the overlay series next to the radiograph, the web viewer draws the overlay in
headless Chromium (screenshots in docs/), dcmtk's presentation-state code puts the GSPS outlines
where the overlay draws its boxes, and DICOMweb finds and returns the SR unchanged in meaning.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from servers import Orthanc, require

from dicom_io.sc import SERIES_DESCRIPTION as SC_DESCRIPTION
from dicom_io.sc import overlay_layout
from dicom_io.sr import read_sr

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"
PHANTOM_SEED = 4242
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@dataclass
class Scored:
    source: Path
    sr: Path
    sc: Path
    gsps: Path
    built: dict[str, Any]  # what ``rascore score --json`` printed


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    """One phantom radiograph and what ``rascore score --out`` made of it."""
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    folder = tmp_path_factory.mktemp("viewer")
    record = write_image(PHANTOM_SEED, generate_image(PHANTOM_SEED, 0, PhantomConfig()), folder)
    source = folder / record["file"]
    out = folder / "out"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "rascore"), "score", str(source), "--json",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (sr,), (sc,), (gsps,) = (sorted(out.glob(f"{kind}_*.dcm")) for kind in ("sr", "sc", "gsps"))
    return Scored(source, sr, sc, gsps, json.loads(proc.stdout))


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory, scored: Scored) -> Iterator[Orthanc]:
    server = Orthanc(
        tmp_path_factory.mktemp("orthanc"), plugins=("OrthancWebViewer", "OrthancDicomWeb")
    ).start()
    for path in (scored.source, scored.sr, scored.sc, scored.gsps):
        # storescu's default contexts lack Comprehensive 3D SR; "-R" proposes the files' own
        proc = subprocess.run(
            [require("storescu", "dcmtk"), "-R", "-aec", server.aet, "127.0.0.1",
             str(server.dicom_port), str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(server.get("/instances")) == 4
    yield server
    server.stop()


def _series(pacs: Orthanc) -> dict[str, dict[str, Any]]:
    """Orthanc's series by description."""
    found = {}
    for series in pacs.get("/series?expand"):
        found[series["MainDicomTags"].get("SeriesDescription", "")] = series
    return found


def _canvas_pixels(page: Any) -> np.ndarray:
    """The web viewer's largest canvas as an RGBA array (what it actually drew)."""
    url = page.evaluate(
        """() => [...document.querySelectorAll('canvas')]
            .sort((a, b) => b.width * b.height - a.width * a.height)[0].toDataURL('image/png')"""
    )
    png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), dtype=np.uint8)
    bgra = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    assert bgra is not None
    return np.asarray(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA))


def _drawn(page: Any) -> bool:
    return bool(
        page.evaluate(
            """() => [...document.querySelectorAll('canvas')].some(c => {
                if (!c.width || !c.height) return false;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let lit = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 60) lit++;
                return lit > d.length / 4 / 20;
            })"""
        )
    )


def test_explorer_lists_the_overlay_and_the_web_viewer_draws_it(
    pacs: Orthanc, scored: Scored
) -> None:
    chromium = require("/usr/bin/chromium", "chromium")
    from playwright.sync_api import sync_playwright

    series = _series(pacs)
    source_description = str(pydicom.dcmread(scored.source).SeriesDescription)
    overlay = series[SC_DESCRIPTION]
    base = f"http://127.0.0.1:{pacs.http_port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{base}/app/explorer.html#study?uuid={overlay['ParentStudy']}")
        page.wait_for_function(
            "t => document.body.innerText.includes(t)", arg=SC_DESCRIPTION, timeout=20_000
        )
        text = page.inner_text("body")
        assert source_description in text and SC_DESCRIPTION in text
        page.screenshot(path=str(DOCS / "viewer-study.png"))

        page.goto(f"{base}/web-viewer/app/viewer.html?series={overlay['ID']}")
        page.wait_for_function("() => document.querySelectorAll('canvas').length > 0")
        page.wait_for_timeout(500)
        for _ in range(100):
            if _drawn(page):
                break
            page.wait_for_timeout(200)
        shown = _canvas_pixels(page)
        page.screenshot(path=str(DOCS / "viewer-overlay.png"))
        browser.close()
    _assert_looks_like(shown, pydicom.dcmread(scored.sc).pixel_array)


def _assert_looks_like(shown: np.ndarray, sc: np.ndarray) -> None:
    """The canvas shows the SC: its image fitted into the canvas correlates with the SC's
    pixels, and the coloured boxes come through as colour."""
    rgb = shown[:, :, :3].astype(np.float32)
    lit = rgb.sum(axis=2) > 30
    assert lit.mean() > 0.05, "the web viewer drew nothing"
    ys, xs = np.nonzero(lit)
    crop = rgb[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    # Fit the SC as the viewer does (whole image, aspect kept) and compare a centre crop.
    reference = cv2.resize(sc.astype(np.float32), (crop.shape[1], crop.shape[0]))
    h, w = crop.shape[:2]
    centre = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    a, b = crop[centre].mean(axis=2).ravel(), reference[centre].mean(axis=2).ravel()
    correlation = float(np.corrcoef(a, b)[0, 1])
    assert correlation > 0.7, f"the canvas does not look like the SC (r={correlation:.2f})"
    coloured = (crop.max(axis=2) - crop.min(axis=2)) > 60
    assert coloured.mean() > 0.001, "no coloured boxes on the canvas"


# --- GSPS: dcmtk's presentation-state code against the SC ----------------------------------

_POLYLINE = re.compile(r"graphic \d+: points=(\d+) type=polyline.*?\n.*?coordinates: ([^\n]+)")


_TEXT = re.compile(r'text \d+: "(\S+) ')
_LABEL = re.compile(r"^[LR]_[A-Z]+\d?$")


def _dcmtk_outlines(scored: Scored, out: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """dcmp2pgm renders the source with the GSPS applied (VOI, displayed area) and reports the
    graphic objects as its presentation-state code understood them, layer by layer; it leaves
    drawing them to the viewer. Returns the render and each joint's polyline, by label (in a
    layer, graphic k outlines the joint that text k names)."""
    proc = subprocess.run(
        [require("dcmp2pgm", "dcmtk"), "-v", "-p", str(scored.gsps), str(scored.source), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    dump = proc.stdout + proc.stderr
    assert proc.returncode == 0, dump
    assert "Recomm. display value: gray 0xffff" in dump
    outlines = {}
    for layer in dump.split("Graphic Layer #")[1:]:
        labels = [t for t in _TEXT.findall(layer) if _LABEL.match(t)]
        lines = _POLYLINE.findall(layer)
        assert len(lines) == len(labels), layer
        for label, (count, coordinates) in zip(labels, lines, strict=True):
            points = [p.split("\\") for p in coordinates.split(",") if p.strip()]
            assert len(points) == int(count)
            outlines[label] = np.array(points, dtype=np.float64)
    render = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert render is not None, dump
    return np.asarray(render), outlines


def test_gsps_outlines_from_dcmtk_coincide_with_the_sc_boxes(
    scored: Scored, tmp_path: Path
) -> None:
    """Each joint's GSPS outline, as dcmtk reads it onto its render of the source and scaled to
    the SC's grid (the SC is a copy capped at 1,280 px a side), lies on the SC's box."""
    render, polylines = _dcmtk_outlines(scored, tmp_path / "gsps.pgm")
    source = pydicom.dcmread(scored.source)
    sc = pydicom.dcmread(scored.sc)
    assert render.shape == (source.Rows, source.Columns)
    result = read_sr(pydicom.dcmread(scored.sr))
    layout = overlay_layout(source, result)
    scale_x, scale_y = sc.Columns / source.Columns, sc.Rows / source.Rows
    assert sorted(polylines) == sorted(j.label for j in result.joints)
    for joint, box in zip(result.joints, layout.boxes, strict=True):
        # One joint's outline at a time, in the layer's grey: neighbouring boxes overlap.
        drawn = render.copy()
        xy = np.round(polylines[joint.label] - 1).astype(np.int32)  # column\row, 1-based centres
        cv2.polylines(drawn, [xy], isClosed=False, color=255, thickness=3)
        ys, xs = np.nonzero(drawn != render)
        assert len(xs), joint.label
        found = (xs.min() * scale_x, ys.min() * scale_y, xs.max() * scale_x, ys.max() * scale_y)
        x0, y0, x1, y1 = box
        expected = (x0, y0, x1 - 1, y1 - 1)
        tolerance = 3 + layout.stroke
        off = max(abs(f - e) for f, e in zip(found, expected, strict=True))
        assert off <= tolerance, (joint.label, found, expected)


# --- DICOMweb -------------------------------------------------------------------------------


def _http(url: str, accept: str) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["Content-Type"], bytes(response.read())


def test_dicomweb_finds_and_returns_the_sr(pacs: Orthanc, scored: Scored) -> None:
    """QIDO-RS finds the SR by SOP class; WADO-RS returns it, and it reads back as scored."""
    sr = pydicom.dcmread(scored.sr)
    base = f"http://127.0.0.1:{pacs.http_port}/dicom-web"
    study = sr.StudyInstanceUID
    query = urllib.parse.urlencode({"SOPClassUID": SR_CLASS})
    kind, body = _http(f"{base}/studies/{study}/instances?{query}", "application/dicom+json")
    assert "json" in kind
    (found,) = json.loads(body)
    assert found["00080016"]["Value"] == [SR_CLASS]
    assert found["00080018"]["Value"] == [sr.SOPInstanceUID]
    series = found["0020000E"]["Value"][0]
    url = f"{base}/studies/{study}/series/{series}/instances/{sr.SOPInstanceUID}"
    kind, body = _http(url, 'multipart/related; type="application/dicom"')
    assert kind.startswith("multipart/related")
    message = BytesParser().parsebytes(b"Content-Type: " + kind.encode() + b"\r\n\r\n" + body)
    (part,) = [p for p in message.walk() if p.get_content_type() == "application/dicom"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    fetched = read_sr(pydicom.dcmread(io.BytesIO(payload)))
    built = scored.built["joints"]
    assert [j.label for j in fetched.joints] == [j["label"] for j in built]
    assert [(j.jsn, j.erosion) for j in fetched.joints] == [(j["jsn"], j["erosion"]) for j in built]
    assert [list(j.box) for j in fetched.joints] == [j["box"] for j in built]

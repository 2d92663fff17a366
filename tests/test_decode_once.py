"""Issue 13, "decode once": the overlay SC and the GSPS built from what scoring kept (the
overlay's grey copy and the window it read with) on a header without pixels are the ones a
decode of the source makes; the node's build of a scored job never decodes the source, and a
job scored before these were kept still builds by decoding.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from not_assessable_scoring import FakeScorer
from pydicom import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid
from servers import PostgresServer
from sqlalchemy import inspect, select, text
from test_node_parts import _insert_scored_image

import dicom_io.pr.gsps
import dicom_io.sc.render
from dicom_io.pr import build_gsps
from dicom_io.reading import UnreadableImage, read_dicom, read_radiograph
from dicom_io.results import (
    EROSION_GRADES,
    JSN_GRADES,
    JointResult,
    ModelInfo,
    ResultBuildError,
    ScoringResult,
)
from dicom_io.sc import (
    OVERLAY_LONG_SIDE,
    build_overlay_sc,
    overlay_grey,
    overlay_layout,
    overlay_shape,
)
from worker.db import migrate
from worker.db.engine import make_engine, session_scope
from worker.db.models import ImageScoreRow, Instance, InstanceStatus, Job, JobStatus, Study
from worker.jobs import build
from worker.jobs import score as jobs
from worker.jobs.mapping import stored_result
from worker.node.store import Store
from worker.settings import Settings

MODEL = ModelInfo("rascore-test", "1.0", "2.25.27182818284590452353602874")
WINDOW_TAGS = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTSequence")


def _truth(phantom_file: Path) -> dict[str, Any]:
    return dict(json.loads((phantom_file.parent / "truth.json").read_text())["images"][0])


def _result(source: Dataset, truth: dict[str, Any]) -> ScoringResult:
    def probs(grade: int, n: int) -> tuple[float, ...]:
        return tuple(0.9 if k == grade else 0.1 / (n - 1) for k in range(n))

    joints = tuple(
        JointResult(
            j["label"],
            tuple(int(v) for v in j["box"]),  # type: ignore[arg-type]
            int(j["jsn"]),
            int(j["erosion"]),
            probs(int(j["jsn"]), JSN_GRADES),
            probs(int(j["erosion"]), EROSION_GRADES),
        )
        for j in truth["joints"]
    )
    return ScoringResult(str(source.SOPInstanceUID), joints, MODEL)


def _without_window(phantom_file: Path, path: Path) -> Dataset:
    """The phantom with no window of its own (reading makes one from the histogram)."""
    ds = pydicom.dcmread(phantom_file)
    for keyword in WINDOW_TAGS:
        if keyword in ds:
            del ds[keyword]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SC and GSPS builders fail if they decode a source."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the source was decoded")

    monkeypatch.setattr(dicom_io.sc.render, "read_radiograph", refuse)
    monkeypatch.setattr(dicom_io.pr.gsps, "read_radiograph", refuse)


def test_overlay_size_is_capped_never_enlarged() -> None:
    assert overlay_shape(2047, 2783) == (941, OVERLAY_LONG_SIDE)
    assert overlay_shape(2783, 2047) == (OVERLAY_LONG_SIDE, 941)
    assert overlay_shape(800, 600) == (800, 600)
    small = np.linspace(0, 1, 800 * 600, dtype=np.float32).reshape(800, 600)
    assert np.array_equal(overlay_grey(small), np.rint(small * 255).astype(np.uint8))


def test_sc_from_the_kept_grey_copy_is_the_sc_of_the_source(
    phantom_file: Path, tmp_path: Path, assert_dciodvfy_clean: Any
) -> None:
    source = pydicom.dcmread(phantom_file)
    result = _result(source, _truth(phantom_file))
    decoded = build_overlay_sc(source, result)  # as `rascore score --out` did: decodes
    image = read_radiograph(source)
    png = tmp_path / "grey.png"  # as the scoring worker keeps it
    cv2.imwrite(str(png), overlay_grey(image.pixels), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    header = read_dicom(phantom_file, pixels=False)
    assert "PixelData" not in header
    kept = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    for grey in (kept, image.pixels):  # the copy, or the scorer's own full-size float image
        sc = build_overlay_sc(header, result, grey=grey)
        assert (sc.Rows, sc.Columns) == overlay_shape(source.Rows, source.Columns)
        assert np.array_equal(sc.pixel_array, decoded.pixel_array)
        assert sc.PixelSpacing == decoded.PixelSpacing
    path = tmp_path / "sc.dcm"
    sc.save_as(path, enforce_file_format=True)
    assert_dciodvfy_clean(path)


def test_boxes_follow_the_shrink(phantom_file: Path) -> None:
    """A box drawn at the overlay's scale sits where the joint is: the colour of its edge is
    found on the scaled box, not on the source-pixel one."""
    source = pydicom.dcmread(phantom_file)
    result = _result(source, _truth(phantom_file))
    layout = overlay_layout(source, result)
    rows, columns = overlay_shape(source.Rows, source.Columns)
    fx, fy = columns / source.Columns, rows / source.Rows
    for joint, (x0, y0, x1, y1) in zip(result.joints, layout.boxes, strict=True):
        x, y, w, h = joint.box
        assert abs(x0 - x * fx) <= 1 and abs(y0 - y * fy) <= 1
        assert abs(x1 - (x + w) * fx) <= 1 and abs(y1 - (y + h) * fy) <= 1


def test_scanned_film_spacing_is_scaled_with_the_overlay(
    phantom_file: Path, tmp_path: Path, assert_dciodvfy_clean: Any
) -> None:
    source = pydicom.dcmread(phantom_file)
    del source.PixelSpacing
    source.NominalScannedPixelSpacing = [0.1, 0.1]
    sc = build_overlay_sc(source, _result(source, _truth(phantom_file)))
    assert "PixelSpacing" not in sc
    expected = [0.1 * source.Rows / sc.Rows, 0.1 * source.Columns / sc.Columns]
    assert [float(v) for v in sc.NominalScannedPixelSpacing] == pytest.approx(expected)
    path = tmp_path / "sc.dcm"
    sc.save_as(path, enforce_file_format=True)
    assert_dciodvfy_clean(path)


def test_gsps_takes_the_scoring_window_without_decoding(
    phantom_file: Path, tmp_path: Path, assert_dciodvfy_clean: Any, no_decoding: None
) -> None:
    path = tmp_path / "source.dcm"
    source = _without_window(phantom_file, path)
    image = read_radiograph(path)
    assert image.voi == "histogram"
    result = _result(source, _truth(phantom_file))
    header = read_dicom(path, pixels=False)
    with pytest.raises(ResultBuildError, match="the source was decoded"):
        build_gsps(header, result)  # no window given: it would have to decode
    gsps = build_gsps(header, result, window=(*image.window, image.window_explanation))
    voi = gsps.SoftcopyVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == pytest.approx(image.window)
    assert voi.WindowCenterWidthExplanation == image.window_explanation.split(" (")[0][:64]
    out = tmp_path / "gsps.dcm"
    gsps.save_as(out, enforce_file_format=True)
    assert_dciodvfy_clean(out)


def test_header_of_a_deflated_file(phantom_file: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(phantom_file)
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True, implicit_vr=False, little_endian=True)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    header = read_dicom(path, pixels=False)
    assert "PixelData" not in header and header.Rows == ds.Rows


# --- the node's build --------------------------------------------------------------------------


def _scored_job(
    source: Dataset, phantom_file: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, int]:
    """A node database and store holding ``source``, scored by the node's task (FakeScorer)."""
    settings = Settings(home=home)
    url = settings.effective_database_url
    migrate.upgrade(url)
    scorer = FakeScorer(_truth(phantom_file))
    monkeypatch.setattr(jobs, "_scorer", lambda _model_dir: scorer)
    key = Store.new_image_key()
    Store(settings.effective_store_dir).write_dataset(key, source)
    with session_scope(url) as session:
        job = Job(
            instance=Instance(
                study=Study(study_instance_uid=str(source.StudyInstanceUID), patient_id="P"),
                sop_instance_uid=str(source.SOPInstanceUID),
                sop_class_uid=str(source.SOPClassUID),
                sha256="0" * 64,
                transfer_syntax=str(source.file_meta.TransferSyntaxUID),
                size=1,
                store_key=key,
                status=InstanceStatus.QUEUED,
            ),
            model_name=scorer.bundle.name,
            model_version=scorer.bundle.version,
            status=JobStatus.QUEUED,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    assert jobs.score_job(settings, job_id, worker="test:1").status == "done"
    return settings, job_id


def _built(settings: Settings, job_id: int) -> dict[str, Dataset]:
    store = Store(settings.effective_store_dir)
    with session_scope(settings.effective_database_url) as session:
        job = session.get_one(Job, job_id)
        assert not [a for a in job.attempts if a.task == "build" and a.outcome != "done"]
        return {r.kind: pydicom.dcmread(store.path(r.store_key)) for r in job.results}


def _strip_pixels(settings: Settings, job_id: int) -> Path:
    """Rewrite the stored source without its Pixel Data: nothing could decode it now."""
    with session_scope(settings.effective_database_url) as session:
        path = Store(settings.effective_store_dir).path(
            session.get_one(Job, job_id).instance.store_key
        )
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    return path


def test_build_of_a_scored_job_never_decodes_the_source(
    phantom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_decoding: None
) -> None:
    source = _without_window(phantom_file, tmp_path / "source.dcm")
    image = read_radiograph(tmp_path / "source.dcm")
    settings, job_id = _scored_job(source, phantom_file, tmp_path / "home", monkeypatch)
    with session_scope(settings.effective_database_url) as session:
        row = session.scalars(select(ImageScoreRow).where(ImageScoreRow.job_id == job_id)).one()
        assert (row.window_centre, row.window_width) == pytest.approx(image.window)
        assert (row.window_voi, row.window_function) == ("histogram", image.voi_function)
        assert row.window_explanation == image.window_explanation
        assert row.overlay_grey_key is not None
        grey_path = Store(settings.effective_store_dir).path(row.overlay_grey_key)
        result = stored_result(row, str(source.SOPInstanceUID))
    kept = cv2.imread(str(grey_path), cv2.IMREAD_GRAYSCALE)
    assert kept is not None and np.array_equal(kept, overlay_grey(image.pixels))
    _strip_pixels(settings, job_id)
    build.build_results(settings, job_id)
    built = _built(settings, job_id)
    assert set(built) == {"sr", "sc", "gsps"}
    voi = built["gsps"].SoftcopyVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == pytest.approx(image.window)
    monkeypatch.undo()
    expected = build_overlay_sc(source, result)  # decoding the source, as before
    assert np.array_equal(built["sc"].pixel_array, expected.pixel_array)


@pytest.mark.parametrize("lost", ["scored-before", "copy-lost"])
def test_build_decodes_when_nothing_was_kept(
    lost: str, phantom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job scored before the grey copy and window were kept, or whose copy is gone, is built
    by decoding the source, as before."""
    source = _without_window(phantom_file, tmp_path / "source.dcm")
    image = read_radiograph(tmp_path / "source.dcm")
    settings, job_id = _scored_job(source, phantom_file, tmp_path / "home", monkeypatch)
    with session_scope(settings.effective_database_url) as session:
        row = session.scalars(select(ImageScoreRow).where(ImageScoreRow.job_id == job_id)).one()
        assert row.overlay_grey_key is not None
        grey_path = Store(settings.effective_store_dir).path(row.overlay_grey_key)
        if lost == "scored-before":
            row.window_centre = row.window_width = row.overlay_grey_key = None
            row.window_voi = row.window_function = row.window_explanation = None
        result = stored_result(row, str(source.SOPInstanceUID))
    grey_path.unlink()
    build.build_results(settings, job_id)
    built = _built(settings, job_id)
    assert set(built) == {"sr", "sc", "gsps"}
    voi = built["gsps"].SoftcopyVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == pytest.approx(image.window)
    expected = build_overlay_sc(source, result)
    assert np.array_equal(built["sc"].pixel_array, expected.pixel_array)


def test_source_without_pixels_and_nothing_kept_fails_the_build(
    phantom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback really decodes: with no copy and no pixels the build fails, and says so."""
    source = _without_window(phantom_file, tmp_path / "source.dcm")
    settings, job_id = _scored_job(source, phantom_file, tmp_path / "home", monkeypatch)
    with session_scope(settings.effective_database_url) as session:
        row = session.scalars(select(ImageScoreRow).where(ImageScoreRow.job_id == job_id)).one()
        Store(settings.effective_store_dir).path(str(row.overlay_grey_key)).unlink()
    stripped = _strip_pixels(settings, job_id)
    with pytest.raises(UnreadableImage):
        read_radiograph(stripped)
    build.build_results(settings, job_id)
    with session_scope(settings.effective_database_url) as session:
        job = session.get_one(Job, job_id)
        assert [a.outcome for a in job.attempts if a.task == "build"] == ["failed"]


# --- migration 0005 ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migration_0005_adds_the_kept_window_and_grey_key_and_drops_them(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A score from before has none of them (its build decodes); going back keeps the score."""
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'rascore.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"d_{hashlib.sha1(str(tmp_path).encode()).hexdigest()[:12]}")
    migrate.upgrade(url, "0004")
    engine = make_engine(url)
    with engine.begin() as connection:
        _insert_scored_image(connection, joints=2)
    migrate.upgrade(url)
    with session_scope(url) as session:
        row = session.get_one(ImageScoreRow, 1)
        assert (row.window_centre, row.window_width, row.overlay_grey_key) == (None, None, None)
        row.window_centre, row.window_width, row.window_voi = 2048.0, 4096.0, "histogram"
        row.window_explanation = "histogram (1st-99th percentile of the anatomy)"
        row.overlay_grey_key = Store.overlay_grey_key(1)
    with session_scope(url) as session:
        row = session.get_one(ImageScoreRow, 1)
        assert (row.window_centre, row.window_voi) == (2048.0, "histogram")
        assert row.overlay_grey_key == "results/000000/1/overlay-grey.png"
    migrate.downgrade(url, "0004")
    with engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("image_scores")}
        assert not columns & {"window_centre", "window_width", "overlay_grey_key"}
        assert connection.execute(text("SELECT total_jsn FROM image_scores")).scalar() == 2
    migrate.upgrade(url)
    engine.dispose()

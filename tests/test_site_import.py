"""``rascore site import``: phantoms exported as an RA2-DREAM site, a rascore table with two
readers, DICOM files with pseudonymised patients; bad rows all reported and nothing written."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest
from pydicom import dcmread
from site_fixture import make_site
from typer.testing import CliRunner

from dicom_io.reading import read_radiograph
from scoring.joints import JOINT_NAMES
from scoring.phantom import PhantomConfig, generate_image
from worker.cli import app
from worker.lab.phantom_export import write_image
from worker.lab.ra2dream_export import TABLE, export_ra2dream
from worker.lab.site.folder import open_site
from worker.lab.site.importer import SiteImportError, import_site
from worker.lab.site.pseudonym import pseudonym
from worker.lab.site.ra2dream import COLUMNS

SEED = 11


@pytest.fixture(scope="module")
def ra2dream_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Four phantom hands (two patients) in the RA2-DREAM layout, with their truth."""
    out = tmp_path_factory.mktemp("ra2dream")
    made = export_ra2dream(out, 4, SEED, PhantomConfig(hands=1))
    return out, made


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def test_ra2dream_export_has_the_challenge_columns(ra2dream_site: tuple[Path, dict]) -> None:
    folder, made = ra2dream_site
    header, rows = _read_csv(folder / TABLE)
    assert tuple(header) == COLUMNS
    assert "LH_mcp_J__ip" not in header and "LH_mcp_E__ip" in header
    assert sorted(p.name for p in folder.glob("*.jpg")) == sorted(made["images"])
    for row in rows:  # the totals are the sums, wrists and feet are 0
        erosion = sum(int(row[c]) for c in header if "_E__" in c)
        narrowing = sum(int(row[c]) for c in header if "_J__" in c)
        assert (int(row["Overall_erosion"]), int(row["Overall_narrowing"])) == (erosion, narrowing)
        assert int(row["Overall_Tol"]) == erosion + narrowing
        assert row["LH_wrist_E__radius"] == "0" and row["RF_mtp_J__3"] == "0"


def test_ra2dream_round_trip_gives_the_truth(
    ra2dream_site: tuple[Path, dict], tmp_path: Path
) -> None:
    folder, made = ra2dream_site
    summary = import_site("ra2dream", folder / TABLE, folder, tmp_path / "site")
    site = open_site(tmp_path / "site")
    assert summary.digest == site.digest and summary.images == 4 and summary.patients == 2
    assert summary.not_labelled == {"jsn": 4, "erosion": 0}  # the thumb IP of 4 hands
    assert site.readers() == ["reader1"]
    got = {(x.image_id, x.joint): (x.jsn, x.erosion) for x in site.labels}
    want = {}
    for hand in made["hands"]:
        image_id = f"{hand['patient']}-{hand['code']}"
        for joint in JOINT_NAMES:
            jsn, erosion = hand["truth"][joint]
            want[image_id, joint] = (None if joint == "IP" else jsn, erosion)
    assert got == want
    for image in site.images:  # copied as given, one hand each
        assert (site.path(image)).read_bytes() == (folder / f"{image.image_id}.jpg").read_bytes()
        assert image.hand == image.image_id[-2] and image.pixel_spacing_mm is None
    wrists = [e for e in site.extra if e.region == "wrist"]
    assert len(wrists) == 4 * 12 and {e.score for e in wrists} == {0}
    assert {e.image_id[-2:] for e in site.extra if e.region == "mtp"} == {"LF", "RF"}
    assert site.source["format"] == "ra2dream"


def test_ra2dream_missing_hand_and_stray_image_are_reported(
    ra2dream_site: tuple[Path, dict], tmp_path: Path
) -> None:
    folder, made = ra2dream_site
    copy = tmp_path / "in"
    shutil.copytree(folder, copy)
    first = made["hands"][0]
    (copy / first["file"]).unlink()  # the table has this hand, the folder not
    shutil.copy(copy / made["images"][1], copy / "NOBODY-LH.jpg")
    shutil.copy(copy / made["images"][1], copy / f"{first['patient']}-LF.jpg")
    summary = import_site("ra2dream", copy / TABLE, copy, tmp_path / "site", reader="rheum1")
    assert summary.images == 3
    why = {s["file"]: s["why"] for s in summary.skipped}
    assert "no image" in why[f"{first['patient']}-{first['code']}"]
    assert "no row" in why["NOBODY-LH.jpg"] and "foot" in why[f"{first['patient']}-LF.jpg"]
    assert open_site(tmp_path / "site").readers() == ["rheum1"]


def test_ra2dream_bad_rows_all_reported_and_nothing_written(
    ra2dream_site: tuple[Path, dict], tmp_path: Path
) -> None:
    folder, made = ra2dream_site
    copy = tmp_path / "in"
    shutil.copytree(folder, copy)
    header, rows = _read_csv(copy / TABLE)
    out_of_range = {**rows[0], "LH_pip_J__2": "7"}
    not_integer = {**rows[1], "RH_mcp_E__3": "1.5"}
    duplicate = dict(rows[1])
    totals = {**rows[0], "Patient_ID": "EXTRA01", "Overall_erosion": "999"}
    _write_csv(copy / TABLE, header, [out_of_range, not_integer, duplicate, totals])
    (copy / made["images"][0]).write_bytes(b"\xff\xd8 not a jpeg at all")
    out = tmp_path / "site"
    with pytest.raises(SiteImportError) as caught:
        import_site("ra2dream", copy / TABLE, copy, out)
    errors = caught.value.errors
    assert any(e.startswith(f"{TABLE}:2: LH_pip_J__2: 7 is outside 0–4") for e in errors)
    assert any(e.startswith(f"{TABLE}:3: RH_mcp_E__3: '1.5' is not a whole") for e in errors)
    assert any(e.startswith(f"{TABLE}:4: patient") and "line 3" in e for e in errors)
    assert any(e.startswith(f"{TABLE}:5: Overall_erosion is 999") for e in errors)
    assert any(made["images"][0] in e and "not a readable" in e for e in errors)
    assert len(errors) == 5, errors
    assert not out.exists() and list(tmp_path.iterdir()) == [copy]

    _write_csv(copy / TABLE, [*header, "LH_mcp_J__ip"], [{**rows[0], "LH_mcp_J__ip": "1"}])
    with pytest.raises(SiteImportError) as caught:
        import_site("ra2dream", copy / TABLE, copy, out)
    assert f"{TABLE}:1: unknown column 'LH_mcp_J__ip'" in caught.value.errors
    assert not out.exists()


def _rascore_table(site_root: Path, path: Path, extra_rows: list[list[str]]) -> None:
    """The canonical site folder's labels as a rascore table (image = file name)."""
    site = open_site(site_root)
    files = {image.image_id: Path(image.file).name for image in site.images}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "patient", "hand", "joint", "reader", "jsn", "erosion", "x", "y"])
        for i, x in enumerate(site.labels):
            xy = ["12.5", "30"] if i == 0 else ["", ""]
            cells = [files[x.image_id], x.patient, x.hand, x.joint, x.reader, x.jsn, x.erosion]
            writer.writerow(["" if c is None else c for c in cells] + xy)
        writer.writerows(extra_rows)


def test_rascore_table_with_two_readers(tmp_path: Path) -> None:
    given = make_site(tmp_path / "given", patients=1, seed=5, second_reader=True)
    _rascore_table(given, tmp_path / "labels.csv", [])
    summary = import_site("rascore", tmp_path / "labels.csv", given / "images", tmp_path / "site")
    site, original = open_site(tmp_path / "site"), open_site(given)
    assert site.readers() == ["second", "truth"] and summary.readers == ["second", "truth"]
    assert summary.images == 2 and summary.patients == 1

    def key(x: object) -> tuple:
        return (x.image_id, x.joint, x.reader, x.jsn, x.erosion)  # type: ignore[attr-defined]

    assert sorted(map(key, site.labels)) == sorted(map(key, original.labels))
    first = next(x for x in site.labels if x.x is not None)
    assert (first.x, first.y) == (12.5, 30.0)
    assert sorted(i.sha256 for i in site.images) == sorted(i.sha256 for i in original.images)


def test_rascore_table_bad_rows(tmp_path: Path) -> None:
    given = make_site(tmp_path / "given", patients=1, seed=5)
    name = Path(open_site(given).images[0].file).name
    bad = [
        [name, "SITE000", "R", "DIP2", "truth", "1", "0", "", ""],  # line 22: unknown joint
        [name, "SITE000", "X", "PIP2", "other", "1", "0", "", ""],  # 23: hand
        [name, "SITE000", "R", "PIP3", "other", "5", "0", "", ""],  # 24: JSN out of range
        [name, "SITE000", "R", "PIP4", "other", "one", "0", "", ""],  # 25: not an integer
        ["gone.png", "SITE000", "R", "PIP4", "other", "1", "0", "", ""],  # 26: no such image
        [name, "SITE000", "R", "PIP2", "truth", "1", "0", "", ""],  # 27: graded twice
    ]
    _rascore_table(given, tmp_path / "labels.csv", bad)
    with pytest.raises(SiteImportError) as caught:
        import_site("rascore", tmp_path / "labels.csv", given / "images", tmp_path / "site")
    lines = sorted(int(e.split(":")[1]) for e in caught.value.errors)
    assert lines == [22, 23, 24, 25, 26, 27], caught.value.errors
    assert any("unknown joint 'DIP2'" in e for e in caught.value.errors)
    assert not (tmp_path / "site").exists()


def _phantom_dicoms(folder: Path) -> list[dict]:
    """Two one-hand phantom DICOMs of one patient (right, then left hand)."""
    folder.mkdir()
    config = PhantomConfig(hands=1, modalities=("DX",))
    return [write_image(SEED, generate_image(SEED, i, config), folder) for i in range(2)]


def test_dicom_import_pseudonymises_and_keeps_spacing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = _phantom_dicoms(tmp_path / "dicom")
    patient_id, name = f"PHANTOM-{SEED}-0000", f"PHANTOM^HAND {SEED}-0000"
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "patient", "hand", "joint", "reader", "jsn", "erosion"])
        for n, record in enumerate(records):
            image = record["sop_instance_uid"] if n == 0 else record["file"]
            for joint in record["joints"]:
                label = joint["label"].split("_", 1)[1]
                jsn = "" if label == "IP" else joint["jsn"]
                writer.writerow([image, "", "", label, "rad1", jsn, joint["erosion"]])
    key = b"k" * 32
    caplog.set_level(logging.INFO)
    summary = import_site(
        "dicom", tmp_path / "labels.csv", tmp_path / "dicom", tmp_path / "site", key=key
    )
    site = open_site(tmp_path / "site")
    assert summary.images == 2 and site.patients() == [pseudonym(key, patient_id)]
    assert sorted(i.hand for i in site.images) == ["L", "R"]
    for image, record in zip(
        sorted(site.images, key=lambda i: i.hand, reverse=True), records, strict=True
    ):
        spacing = read_radiograph(tmp_path / "dicom" / record["file"]).pixel_spacing_mm
        assert spacing is not None and image.pixel_spacing_mm == pytest.approx(spacing)
        copied = dcmread(site.path(image))
        assert copied.PatientID == image.patient and "PatientBirthDate" not in copied
        assert copied.SOPInstanceUID == record["sop_instance_uid"]
        truth = {j["label"].split("_", 1)[1]: j["erosion"] for j in record["joints"]}
        mine = {x.joint: x.erosion for x in site.labels if x.image_id == image.image_id}
        assert mine == truth
    for path in (tmp_path / "site").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert patient_id.encode() not in data and b"PHANTOM^HAND" not in data, path
    assert caplog.records and patient_id not in caplog.text and name not in caplog.text
    assert "key_id" in site.source and key.hex() not in json.dumps(site.source)


def test_dicom_patient_mismatch_is_reported_without_the_id(tmp_path: Path) -> None:
    records = _phantom_dicoms(tmp_path / "dicom")
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "patient", "hand", "joint", "reader", "jsn", "erosion"])
        writer.writerow([records[0]["file"], "SOMEONE-ELSE", "", "MCP2", "rad1", "1", "0"])
        writer.writerow([records[1]["file"], "", "R", "MCP2", "rad1", "1", "0"])  # it is L
        writer.writerow(["junk.dcm", "", "R", "MCP2", "rad1", "1", "0"])
    (tmp_path / "dicom" / "junk.dcm").write_bytes(b"\x00garbage" * 40)
    with pytest.raises(SiteImportError) as caught:
        import_site(
            "dicom", tmp_path / "labels.csv", tmp_path / "dicom", tmp_path / "site", key=b"k" * 32
        )
    errors = caught.value.errors
    assert len(errors) == 3 and all(e.startswith("labels.csv:") for e in errors), errors
    assert any("does not match" in e for e in errors) and any("says L" in e for e in errors)
    assert "labels.csv:4: junk.dcm: not a DICOM file" in errors
    assert not any(f"PHANTOM-{SEED}" in e for e in errors)


def test_cli_phantom_ra2dream_then_site_import(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(
        app, ["phantom", "--out", str(tmp_path / "ph"), "--count", "2", "--seed", "3",
              "--hands", "1", "--format", "ra2dream"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    ph = tmp_path / "ph"
    args = ["site", "import", "--format", "ra2dream", "--labels", str(ph / TABLE),
            "--images", str(ph), "--out", str(tmp_path / "site"), "--json"]  # fmt: skip
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["imported"] and summary["images"] == 2 and summary["patients"] == 1
    assert summary["digest"] == open_site(tmp_path / "site").digest
    again = runner.invoke(app, args)  # the folder is there now: refused, one line
    assert again.exit_code == 2 and "not an empty folder" in again.output
    wrong = runner.invoke(app, ["phantom", "--out", str(tmp_path / "x"), "--hands", "2",
                                "--format", "ra2dream"])  # fmt: skip
    assert wrong.exit_code == 2

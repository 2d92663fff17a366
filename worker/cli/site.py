"""``rascore site …``: a department's own labelled radiographs made into a site data folder
(worker.lab.site), which ``rascore train --site`` and ``rascore validate --site`` read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from worker.cli.common import err, fail

site_app = typer.Typer(help="A site's own labelled radiographs.", no_args_is_help=True)


def _key(key_file: Path | None) -> bytes:
    from worker.lab.site.pseudonym import KEY_FILE, load_or_create_key
    from worker.settings import Settings

    path = key_file or Settings().home / KEY_FILE
    try:
        return load_or_create_key(path)
    except (OSError, ValueError) as exc:
        raise fail(f"pseudonym key {path}: {exc}") from None


def _inputs(
    fmt: str | None, labels: Path, images: Path | None, dicom: Path | None
) -> tuple[str, Path]:
    """The format and the image folder the options name; a contradiction exits 2."""
    if not labels.is_file():
        raise fail(f"{labels}: no such file")
    if dicom is not None:
        if images is not None or fmt not in (None, "rascore"):
            raise fail("--dicom takes a rascore table in --labels and no --images or --format")
        folder, fmt = dicom, "dicom"
    else:
        if images is None:
            raise fail("give --images DIR (pictures) or --dicom DIR (DICOM files)")
        folder, fmt = images, fmt or "ra2dream"
        if fmt not in ("ra2dream", "rascore"):
            raise fail(f"unknown --format {fmt!r}: ra2dream or rascore")
    if not folder.is_dir():
        raise fail(f"{folder}: no such folder")
    return fmt, folder


@site_app.command("import")
def site_import(
    out: Annotated[Path, typer.Option(help="The site folder to make (new, or an empty folder).")],
    labels: Annotated[Path, typer.Option(help="The label table (CSV).")],
    images: Annotated[
        Path | None, typer.Option(help="Folder of the images (JPEG, PNG or DICOM).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="ra2dream (the default) or rascore (docs/site-data.md)."),
    ] = None,
    dicom: Annotated[
        Path | None,
        typer.Option(help="Folder of DICOM radiographs; --labels is then a rascore table."),
    ] = None,
    reader: Annotated[
        str, typer.Option(help="Reader of a table without a Reader (or empty reader) cell.")
    ] = "reader1",
    key_file: Annotated[
        Path | None,
        typer.Option(help="Pseudonym key for DICOM Patient IDs (default: RASCORE_HOME's)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a summary as JSON.")] = False,
) -> None:
    """Check a site's label table and images and write them as a site data folder: every bad
    row is reported, and nothing is written unless all are good."""
    from worker.lab.site.importer import SiteImportError, check_destination, import_site

    kind, folder = _inputs(fmt, labels, images, dicom)
    if not reader.strip():
        raise fail("--reader must not be empty")
    try:
        check_destination(out)
    except ValueError as exc:
        raise fail(str(exc)) from None
    key = _key(key_file) if kind == "dicom" else None
    try:
        with Progress(console=err, transient=True) as progress:
            bar = progress.add_task("checking images", total=None)
            summary = import_site(
                kind, labels, folder, out, reader.strip(), key, lambda: progress.advance(bar)
            )
    except SiteImportError as exc:
        for line in exc.errors:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        if json_output:
            skipped = [{"file": s.file, "why": s.why} for s in exc.skipped]
            print(
                json.dumps({"imported": False, "errors": exc.errors, "skipped": skipped}, indent=1)
            )
        raise fail(
            f"{len(exc.errors)} problem(s) in {labels.name} or its images; nothing imported"
        ) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    for s in summary.skipped:
        err.print(f"skipped {s['file']}: {s['why']}", markup=False, highlight=False)
    err.print(
        f"{summary.images} images of {summary.patients} patients, readers "
        f"{', '.join(summary.readers)}; {summary.labelled['jsn']} JSN and "
        f"{summary.labelled['erosion']} erosion grades; {out}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    if json_output:
        print(json.dumps({"imported": True, **summary.as_json()}, indent=1))

"""``rascore conformance``: write the DICOM conformance statement, or check a copy of it.

The statement is generated from the code (:mod:`worker.conformance`), so the committed copy is
checked against a fresh one rather than maintained by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def conformance(
    out: Annotated[
        Path | None, typer.Option(help="Write the statement here (default: stdout).")
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(help="Compare FILE with the generated statement; exit 1 when they differ."),
    ] = None,
) -> None:
    """The DICOM conformance statement (PS3.2), generated from the code, as Markdown."""
    from worker.conformance import diff_summary, generate

    text = generate()
    if check is not None:
        if not check.is_file():
            print(f"rascore conformance: {check} does not exist", file=sys.stderr)
            raise typer.Exit(2)
        current = check.read_text(encoding="utf-8")
        if current != text:
            print(
                f"{check} differs from the code: {diff_summary(current, text)}; run rascore "
                f"conformance --out {check}",
                file=sys.stderr,
            )
            raise typer.Exit(1)
        print(f"{check} is up to date", file=sys.stderr)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    elif check is None:
        sys.stdout.write(text)

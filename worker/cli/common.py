"""What every command shares: stderr for messages, exit 2 with one line on bad input, and
loading a model with a readable refusal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import Progress

if TYPE_CHECKING:
    from scoring.pipeline import Scorer

err = Console(stderr=True)


def fail(reason: str) -> typer.Exit:
    """Exit 2 with a one-line reason on stderr."""
    print(f"rascore: error: {reason}", file=sys.stderr)
    return typer.Exit(code=2)


def load_scorer(model: Path | None) -> Scorer:
    """The model of ``--model`` (or the built-in one); a model that cannot load exits 2."""
    from scoring.pipeline import Scorer

    try:
        return Scorer.load(model)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None


def bar_factory(progress: Progress) -> Callable[[str, int], Callable[[], None]]:
    """``bar(name, total)`` makes a progress bar and returns the function that advances it."""

    def bar(name: str, total: int) -> Callable[[], None]:
        task = progress.add_task(name, total=total)
        return lambda: progress.advance(task)

    return bar

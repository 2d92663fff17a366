"""Work spread over processes, in order, with a progress bar moved after each item."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_in_processes(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    jobs: int,
    advance: Callable[[], None],
    chunksize: int = 1,
) -> list[R]:
    """``fn`` over ``tasks`` in ``jobs`` processes (in this one when ``jobs`` is 1), results in
    order; ``advance`` after each."""
    out = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for item in pool.map(fn, tasks, chunksize=chunksize):
                out.append(item)
                advance()
    else:
        for task in tasks:
            out.append(fn(task))
            advance()
    return out

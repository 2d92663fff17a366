"""Receiving in several processes (issue 13): one port, the caps held across the processes.

Real receiver processes (:class:`ReceiverProcesses`, spawned) on one listening socket. Which
process accepts a connection is the kernel's choice; to place connections in a given process
the other one is paused (SIGSTOP), so that only the running one accepts.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from test_scp_limits import (
    HOST,
    MB,
    OTHER_HOST,
    SCP_AET,
    _associates,
    _closed_within,
    _send_file,
    _slow_peer,
    _write,
)

from dicom_io.net import ReceivedInstance, StorageSCP
from dicom_io.net.hosts import ConnectionCounts
from dicom_io.net.processes import ReceiverProcesses


def accept(instance: ReceivedInstance) -> int:
    """Runs in the receiver processes: the file stays in ``incoming`` for the test to count."""
    return 0x0000


def _pool(spool: Path, processes: int = 2, **kwargs: Any) -> ReceiverProcesses:
    factory = functools.partial(
        StorageSCP, SCP_AET, 0, accept, spool_dir=spool, host=HOST, **kwargs
    )
    return ReceiverProcesses(factory, processes)


def _wait(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@contextmanager
def _only(pool: ReceiverProcesses, row: int) -> Iterator[None]:
    """Only receiver ``row`` accepts while inside (the others are paused)."""
    others = [pid for i, pid in enumerate(pool.pids) if i != row]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    for pid in others:  # a signal is delivered when the process next runs: wait for it
        _wait(functools.partial(_stopped, pid))
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def _state(pid: int) -> str:
    """The process's state letter in ``/proc`` (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _stopped(pid: int) -> bool:
    return _state(pid) == "T"


def _holds(counts: ConnectionCounts, n: int) -> Callable[[], bool]:
    return lambda: counts.held(HOST) == n


def _counts(pool: ReceiverProcesses) -> ConnectionCounts:
    assert pool.counts is not None
    return pool.counts


def test_the_per_host_cap_holds_across_processes(tmp_path: Path) -> None:
    with _pool(tmp_path, max_associations_per_host=4, acse_timeout=20) as pool:
        counts = _counts(pool)
        held = []
        try:
            for row in (0, 1):
                with _only(pool, row):
                    held += [_slow_peer(pool.port) for _ in range(2)]
                    _wait(_holds(counts, len(held)))
            assert counts.per_process() == [2, 2]  # two in each process
            with _slow_peer(pool.port) as fifth:
                assert _closed_within(fifth, 3) is not None
            assert _associates(pool.port, source=OTHER_HOST)  # another host is not capped
            for raw in held:
                assert _closed_within(raw, 0.3) is None  # the four are still served
        finally:
            for raw in held:
                raw.close()
        _wait(lambda: counts.held(HOST) == 0, 30)  # their slots come back
        assert _associates(pool.port)


def test_max_associations_holds_across_processes(tmp_path: Path) -> None:
    with _pool(tmp_path, max_associations=3) as pool:
        ae = AE("PEER")
        ae.acse_timeout = ae.network_timeout = 10
        ae.add_requested_context(Verification)
        held = []
        try:
            for row, many in ((0, 2), (1, 1)):
                with _only(pool, row):
                    for _ in range(many):
                        assoc = ae.associate(HOST, pool.port, ae_title=SCP_AET)
                        assert assoc.is_established
                        held.append(assoc)
            assert _counts(pool).per_process() == [2, 1]  # no process alone is at its cap
            fourth = ae.associate(HOST, pool.port, ae_title=SCP_AET)
            assert fourth.is_rejected
            answer = fourth.acceptor.primitive
            assert answer is not None  # local limit exceeded, as pynetdicom says it in one
            assert (answer.result_source, answer.diagnostic) == (3, 2)
        finally:
            for assoc in held:
                assoc.release()
        _wait(lambda: _counts(pool).total() == 0)
        assert _associates(pool.port)


def test_a_receiver_that_dies_is_started_again_and_its_slots_given_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _pool(tmp_path, max_associations_per_host=1, acse_timeout=20) as pool:
        counts = _counts(pool)
        victim = pool.pids[0]
        with _only(pool, 0):
            raw = _slow_peer(pool.port)
            _wait(lambda: counts.held(HOST) == 1)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: pool.restarts == 1 and victim not in pool.pids and len(pool.pids) == 2, 60)
        raw.close()
        assert counts.held(HOST) == 0
        assert _associates(pool.port)
    assert any("exited with" in r.getMessage() for r in caplog.records)


def test_images_sent_to_several_processes_are_spooled_and_a_stop_lets_one_finish(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big.dcm"
    _write(big, 96 * MB)
    small = tmp_path / "small.dcm"
    _write(small, 1024)
    statuses: list[int] = []
    with _pool(tmp_path / "spool") as pool:
        senders = [
            threading.Thread(
                target=lambda: statuses.append(
                    int(_send_file(pool.port, small, syntax=ExplicitVRLittleEndian).Status)  # type: ignore[union-attr]
                )
            )
            for _ in range(6)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(30)
        assert statuses == [0] * 6
        late = threading.Thread(
            target=lambda: statuses.append(
                int(_send_file(pool.port, big, syntax=ExplicitVRLittleEndian).Status)  # type: ignore[union-attr]
            )
        )
        late.start()
        _wait(lambda: _counts(pool).total() == 1)
        time.sleep(0.2)  # the data set is on its way
    late.join(30)
    assert statuses == [0] * 7  # stop() let it finish
    assert len(list((tmp_path / "spool" / "incoming").iterdir())) == 7

"""Shared test fixtures.

The DICOM validators are system tools (Debian ``dicom3tools`` and ``dcmtk``). CI installs them,
so a missing tool fails the test instead of skipping it: a silent skip would let invalid
objects through.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import PostgresServer

_TOOL_PACKAGES = {"dciodvfy": "dicom3tools", "dcmdump": "dcmtk"}


def _require_tool(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        pytest.fail(
            f"{name} is not installed; install the Debian package {_TOOL_PACKAGES[name]} "
            f"(`make test` and CI do)",
            pytrace=False,
        )
    return found


def _run(exe: str, path: Path | str) -> tuple[int, str]:
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def assert_dciodvfy_clean() -> Callable[[Path | str], str]:
    """``assert_dciodvfy_clean(path)``: fail with dciodvfy's output if it reports any Error.

    Warnings are allowed; the output is returned so a test can look at them.
    """
    exe = _require_tool("dciodvfy")

    def check(path: Path | str) -> str:
        _, output = _run(exe, path)
        errors = [line for line in output.splitlines() if line.startswith("Error")]
        if errors:
            pytest.fail(
                f"dciodvfy reports {len(errors)} error(s) for {path}:\n{output}", pytrace=False
            )
        return output

    return check


@pytest.fixture(scope="session")
def assert_dcmdump_parses() -> Callable[[Path | str], str]:
    """``assert_dcmdump_parses(path)``: fail unless dcmtk's dcmdump reads the whole file."""
    exe = _require_tool("dcmdump")

    def check(path: Path | str) -> str:
        code, output = _run(exe, path)
        errors = [line for line in output.splitlines() if line.startswith(("E:", "F:"))]
        if code != 0 or errors:
            pytest.fail(f"dcmdump failed (exit {code}) for {path}:\n{output}", pytrace=False)
        return output

    return check


@pytest.fixture(scope="session")
def phantom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bilateral phantom radiograph written as DICOM (seed 2, image 0), with truth.json.

    Real-sized (about 2,000 pixels a side); the truth record is in ``truth.json`` beside it.
    """
    import json

    from scoring.phantom import generate_image
    from worker.lab.phantom_export import write_image

    out = tmp_path_factory.mktemp("phantom")
    record = write_image(2, generate_image(2, 0), out)
    (out / "truth.json").write_text(json.dumps({"images": [record]}))
    return out / record["file"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the module (Debian's, started by tests/servers.py)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer) -> str:
    """A fresh database of each kind the node runs on: the test runs once with each."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rascore.db'}"
    return postgres.create_database(f"t_{hashlib.sha1(str(tmp_path).encode()).hexdigest()[:12]}")

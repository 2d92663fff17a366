"""Real servers for the integration tests: Redis, PostgreSQL and Orthanc from Debian's packages,
and the rascore node itself, each started in a temporary folder on free ports.

`make test` installs the packages (Makefile ``SYSTEM_PACKAGES``); a missing server fails the
test rather than skipping it, so CI cannot pass without really running them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def require(binary: str | Path, package: str) -> str:
    found = shutil.which(str(binary)) or (str(binary) if Path(binary).exists() else None)
    if found is None:
        pytest.fail(f"{binary} missing: install the Debian package {package}", pytrace=False)
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RedisServer:
    """Debian's redis-server on a TCP port, with an append-only file (survives restarts)."""

    def __init__(self, directory: Path) -> None:
        self.binary = require("redis-server", "redis-server")
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: _port_open(self.port), 20, "redis-server")
        return self

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def queue_length(self, queue: str) -> int:
        import redis

        return int(redis.Redis(port=self.port).llen(queue))


class PostgresServer:
    """A PostgreSQL 15 cluster of its own, run as the ``postgres`` user when we are root."""

    def __init__(self) -> None:
        require(POSTGRES_BIN / "postgres", "postgresql")
        # not under pytest's folder: that one is private to root, and the server runs as postgres
        self.directory = Path(tempfile.mkdtemp(prefix="rascore-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        self._run(
            str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
            str(self.directory / "postgres.log"), "-o",
            f"-p {self.port} -h 127.0.0.1 -k {self.directory} -c fsync=off",
            "start",
        )  # fmt: skip
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")


def _plugin(name: str) -> str:
    """Debian installs each Orthanc plugin as ``/usr/share/orthanc/plugins/lib<name>.so``."""
    package = {"OrthancWebViewer": "orthanc-webviewer", "OrthancDicomWeb": "orthanc-dicomweb"}
    return require(ORTHANC_PLUGINS / f"lib{name}.so", package.get(name, "orthanc"))


class Orthanc:
    """Debian's Orthanc as the PACS: accepts C-STORE from anyone, answers REST on loopback."""

    def __init__(
        self,
        directory: Path,
        aet: str = "ORTHANC",
        modalities: dict[str, str] | None = None,
        plugins: tuple[str, ...] = (),
    ) -> None:
        self.binary = require("Orthanc", "orthanc")
        #: Debian plugin names to load, e.g. ``OrthancWebViewer`` (package orthanc-webviewer)
        self.plugins = [_plugin(name) for name in plugins]
        self.directory = directory
        self.aet = aet
        #: peers it answers C-FIND from and C-MOVEs to: name -> ``AET@host:port``
        self.modalities = dict(modalities or {})
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def destination(self) -> str:
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    def start(self) -> Orthanc:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "orthanc.json"
        config.write_text(
            json.dumps(
                {
                    "Name": "rascore-test-pacs",
                    "StorageDirectory": str(self.directory / "db"),
                    "IndexDirectory": str(self.directory / "db"),
                    "DicomAet": self.aet,
                    "DicomPort": self.dicom_port,
                    "HttpPort": self.http_port,
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": False,
                    "DicomCheckCalledAet": False,
                    "DicomAlwaysAllowStore": True,
                    "DicomModalities": {
                        name: [peer.split("@")[0], *_host_port(peer.split("@")[1])]
                        for name, peer in self.modalities.items()
                    },
                    "Plugins": self.plugins,
                    "HttpsCACertificates": "",
                }
            )
        )
        with open(self.directory / "orthanc.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(lambda: self._alive(), 30, "Orthanc")
        return self

    def _alive(self) -> bool:
        try:
            self.get("/system")
        except OSError:
            return False
        return _port_open(self.dicom_port)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def post(self, path: str, body: bytes) -> Any:
        """POST ``body`` (a DICOM file, or JSON) to the REST API; its JSON answer."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            return json.loads(r.read())

    def file(self, instance: str) -> bytes:
        url = f"http://127.0.0.1:{self.http_port}/instances/{instance}/file"
        with urllib.request.urlopen(url, timeout=30) as r:
            return bytes(r.read())

    def instances(self) -> list[dict[str, Any]]:
        """Every stored instance with its main tags."""
        return [
            {**self.get(f"/instances/{i}/simplified-tags"), "_id": i}
            for i in self.get("/instances")
        ]

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


class NodeProcess:
    """``rascore serve`` as a separate process, as an operator runs it."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.port = int(env.get("RASCORE_DICOM_PORT") or free_port())
        self.env = {
            **os.environ,
            "RASCORE_HOME": str(home),
            "RASCORE_DICOM_PORT": str(self.port),
            "RASCORE_DICOM_HOST": "127.0.0.1",
            "RASCORE_MIN_FREE_MB": "1",
            "RASCORE_API_PORT": str(free_port()),  # tests run side by side
            # a study report would be one more delivery in tests that count them per image;
            # tests of studies over time set their own quiet time
            "RASCORE_STUDY_QUIET_S": "86400",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def database_url(self) -> str:
        return self.env.get("RASCORE_DATABASE_URL") or f"sqlite:///{self.home / 'rascore.db'}"

    def start(self, timeout: float = 60) -> NodeProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "serve.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve"],
            env=self.env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(
            lambda: (
                self.process is not None
                and (self.process.poll() is not None or "node started" in self.log())
            ),
            timeout,
            "rascore serve to start",
        )
        assert self.process.poll() is None, f"rascore serve exited:\n{self.log()[-3000:]}"
        return self

    def log(self) -> str:
        path = self.home / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker_log(self) -> str:
        path = self.home / "logs" / "worker-score.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 90) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


def storescu(port: int, *files: Path, aet: str = "STORESCU", called: str = "RASCORE") -> str:
    """dcmtk's storescu, the modality of the tests; returns its output (fails on error)."""
    exe = require("storescu", "dcmtk")
    proc = subprocess.run(
        [exe, "-v", "-aet", aet, "-aec", called, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout + proc.stderr

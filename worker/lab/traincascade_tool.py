"""Where ``opencv_traincascade`` comes from: a path given, ``RASCORE_TRAINCASCADE``, or the
repository's build script (which builds OpenCV 3.4's trainer once and caches it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-traincascade.sh"


def find_traincascade(say: Callable[[str], None] = print) -> Path:
    env = os.environ.get("RASCORE_TRAINCASCADE")
    if env:
        return Path(env)
    on_path = shutil.which("opencv_traincascade")
    if on_path:
        return Path(on_path)
    say("opencv_traincascade: from the cache, or built once (about ten minutes)")
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building opencv_traincascade failed:\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])

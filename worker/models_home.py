"""The model bundles installed in ``RASCORE_HOME``, and which one the node scores with.

Layout::

    HOME/models/<version>/   a bundle as ``rascore train`` writes it, copied by ``install``
                             (plus ``installed.json``, not an artefact: the hash ignores it)
    HOME/models/active       one line: the active version (written atomically)

The shipped model (:data:`scoring.model.DEFAULT_MODEL_DIR`) is always listed and is active when
no version was activated. An explicit ``RASCORE_MODEL_DIR`` overrides the active version (a
node pinned to a model by hand stays pinned). The folder's name is the version the artefacts'
hash gives, so a version names the same weights on every node; every bundle is checked with
:func:`scoring.model.identify` when installed, activated and loaded.

No torch, no database: the node, its workers, the API and the CLI all read it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from scoring.model import DEFAULT_MODEL_DIR, ModelIdentity, ModelRefused, identify
from worker.settings import Settings

__all__ = [
    "MODEL_ACTIVATED",
    "InstalledModel",
    "ModelRefused",
    "UnknownModel",
    "activate",
    "active_model_dir",
    "active_model_version",
    "active_version",
    "default_identity",
    "install",
    "list_models",
    "model_dir_for",
    "settings_for_version",
]

#: the audit event of an activation (``audit_events.event`` is a plain string column)
MODEL_ACTIVATED = "model_activated"
ACTIVE_FILE = "active"
INSTALLED_FILE = "installed.json"
#: what a version may look like as a folder name (e.g. ``1.1.0+1647e9c5be6f``)
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


class UnknownModel(ModelRefused):
    """No installed bundle has that version (one line; a :class:`ModelRefused`, so whatever
    refuses a bad model refuses a missing one too)."""


@dataclass(frozen=True)
class InstalledModel:
    """One bundle as ``rascore model list`` shows it."""

    version: str
    name: str
    detector: str
    directory: str
    trained_on: str | None  #: the site folder's digest, when the card records one
    installed_at: str | None  #: None for the shipped model
    builtin: bool
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def models_dir(home: Path) -> Path:
    return home.resolve() / "models"


@lru_cache(maxsize=1)
def default_identity() -> ModelIdentity:
    """The shipped model's identity (hashed once per process: it never changes)."""
    return identify(DEFAULT_MODEL_DIR)


def active_version(home: Path) -> str | None:
    """The version named in ``HOME/models/active``; None when nothing was activated."""
    try:
        text = (models_dir(home) / ACTIVE_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def model_dir_for(home: Path, version: str) -> Path:
    """The folder of an installed version (the shipped model's for its own version)."""
    if version == default_identity().version:
        return DEFAULT_MODEL_DIR
    if not _VERSION.fullmatch(version):
        raise UnknownModel(f"{version!r} is not a model version")
    directory = models_dir(home) / version
    if not directory.is_dir():
        raise UnknownModel(f"no model {version} installed in {models_dir(home)}")
    return directory


def active_model_dir(settings: Settings) -> Path | None:
    """The model the node scores new images with: ``RASCORE_MODEL_DIR`` when set, else the
    active installed version, else None (the shipped model). An active version whose folder
    has gone is reported by :func:`model_dir_for` rather than silently replaced."""
    if settings.model_dir is not None:
        return settings.model_dir
    version = active_version(settings.home)
    return None if version is None else model_dir_for(settings.home, version)


def settings_for_version(settings: Settings, version: str | None) -> Settings:
    """The settings a worker scores a job of ``version`` with: that version's installed
    bundle, so a job queued before an activation (or by ``rescore --model``) is still scored
    by the model it names. ``RASCORE_MODEL_DIR`` pins the worker to its model; a version not
    installed here falls back to the active one (the worker then leaves the job to another)."""
    if settings.model_dir is not None or version is None:
        return settings
    try:
        directory: Path | None = model_dir_for(settings.home, version)
    except UnknownModel:
        try:
            directory = active_model_dir(settings)
        except UnknownModel:
            return settings
    if directory == DEFAULT_MODEL_DIR:
        directory = None  # the shipped model, as the worker already has it
    return settings if directory is None else settings.model_copy(update={"model_dir": directory})


def active_model_version(settings: Settings) -> str:
    """The version new images are scored with, to mark it among stored scores (a pinned
    ``RASCORE_MODEL_DIR`` is hashed; an activated version is taken from its file)."""
    if settings.model_dir is not None:
        return identify(settings.model_dir).version
    return active_version(settings.home) or default_identity().version


def install(home: Path, source: Path) -> tuple[ModelIdentity, bool]:
    """Copy a checked bundle into ``HOME/models/<version>``; (its identity, whether it was
    new). Copied into a temporary folder beside it and renamed, so a half-copied bundle is
    never installed; the copy is checked again before the rename."""
    identity = identify(source)  # ModelRefused for a tampered bundle
    target = models_dir(home) / identity.version
    if identity.version == default_identity().version or target.is_dir():
        return identity, False  # same version, same artefacts (the version names the hash)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=target.parent))
    try:
        copied = staging / "bundle"
        shutil.copytree(source, copied, ignore=shutil.ignore_patterns(INSTALLED_FILE))
        identify(copied)
        record = {"installed_at": _now(), "source": str(source.resolve())}
        (copied / INSTALLED_FILE).write_text(json.dumps(record, indent=1) + "\n")
        os.replace(copied, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return identify(target), True


def activate(home: Path, version: str) -> ModelIdentity:
    """Check the bundle and make it the active one (the file is replaced atomically)."""
    identity = identify(model_dir_for(home, version))  # ModelRefused for a tampered one
    folder = models_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".active-", dir=folder)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(identity.version + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, folder / ACTIVE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return identity


def list_models(home: Path) -> list[InstalledModel]:
    """The shipped model first, then every installed version in name order. A folder whose
    card cannot be read is listed with its folder name (``show`` and ``activate`` say why)."""
    active = active_version(home)
    default = default_identity()
    found = [_entry(DEFAULT_MODEL_DIR, default.version, None, active in (None, default.version))]
    folder = models_dir(home)
    if folder.is_dir():
        for directory in sorted(p for p in folder.iterdir() if p.is_dir()):
            if directory.name.startswith(".") or directory.name == default.version:
                continue
            name = directory.name
            found.append(_entry(directory, name, _installed_at(directory), active == name))
    return found


def _entry(directory: Path, version: str, installed_at: str | None, active: bool) -> InstalledModel:
    card = read_card(directory)
    return InstalledModel(
        version=version,
        name=str(card.get("name", "?")),
        detector=str((card.get("detector") or {}).get("kind", "cascade")),
        directory=str(directory),
        trained_on=site_digest(card),
        installed_at=installed_at,
        builtin=directory == DEFAULT_MODEL_DIR,
        active=active,
    )


def read_card(directory: Path) -> dict[str, Any]:
    """The card as written (unchecked: listing must not fail on one bad folder)."""
    try:
        card = json.loads((directory / "card.json").read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def site_digest(card: dict[str, Any]) -> str | None:
    """The digest of the site folder the model was trained on (``site_data.digest``, as
    ``rascore train --site`` writes it), when the card records one."""
    for holder in (card.get("site_data"), (card.get("training_data") or {}).get("site")):
        if isinstance(holder, dict) and isinstance(holder.get("digest"), str):
            return str(holder["digest"])
    return None


def _installed_at(directory: Path) -> str | None:
    try:
        value = json.loads((directory / INSTALLED_FILE).read_text()).get("installed_at")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

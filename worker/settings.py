"""Settings of the node, from the environment (prefix ``RASCORE_``) and an optional file."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """DESIGN.md, Contracts: the names are fixed; later issues add to them."""

    model_config = SettingsConfigDict(env_prefix="RASCORE_", env_file=".env", extra="ignore")

    home: Path = Path("./var")
    database_url: str = ""  #: empty: SQLite under ``home``
    broker_url: str = ""  #: empty: the embedded broker
    ae_title: str = "RASCORE"
    dicom_port: int = 11112
    destinations: str = ""  #: ``AET@host:port``, comma-separated
    api_port: int = 8080

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'rascore.db').resolve()}"

"""Cross-site requests: a state-changing request with the dashboard's cookie must come from a
page of this node (OWASP CSRF cheat sheet, verifying origin with standard headers)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


def _netloc(url: str) -> str:
    """``host[:port]`` of a URL, lower case, without the scheme's default port."""
    parts = urlsplit(url)
    netloc = parts.netloc.lower().rsplit("@", 1)[-1]
    default = {"http": ":80", "https": ":443"}.get(parts.scheme.lower())
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return netloc


def same_origin(headers: Mapping[str, str], trusted: list[str] | None = None) -> bool:
    """Whether a state-changing request comes from a page of this node: its Origin (or, when a
    browser sends none, its Referer) names the Host it was sent to, or a trusted origin.
    Neither header: refused (OWASP CSRF cheat sheet, verifying origin with standard headers)."""
    host = headers.get("host", "").lower()
    for default in (":80", ":443"):
        if host.endswith(default):
            host = host[: -len(default)]
    source = headers.get("origin") or headers.get("referer")
    if not source or source == "null" or not host:
        return False
    if _netloc(source) == host:
        return True
    origin = urlsplit(source)
    return f"{origin.scheme}://{origin.netloc}".lower() in (trusted or [])

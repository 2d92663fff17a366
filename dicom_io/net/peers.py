"""DICOM peers: AE titles, ``AET@host:port`` destinations, TLS and associating with them.

Shared by the storage SCU (:mod:`.scu`), the query/retrieve SCU (:mod:`.qr`) and the SCP's
allow-lists (:mod:`.scp`, :mod:`.spool`). Associating never raises for a network problem: it
returns the reason there is no association, in one line, with OpenSSL's reason for a failed
TLS handshake.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

__all__ = [
    "Destination",
    "ae_title_problem",
    "associate",
    "check_ae_title",
    "client_tls_context",
    "new_ae",
    "parse_destinations",
]

_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def ae_title_problem(value: str) -> str | None:
    """Why ``value`` is not a usable AE title, or None.

    An AE title is 1–16 characters of printable ASCII without a backslash; leading and trailing
    spaces do not count, and all spaces is empty.
    """
    if not value.strip():
        return "is empty"
    if len(value) > 16:
        return f"is {len(value)} characters long (16 at most)"
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        return "contains control or non-ASCII characters"
    if "\\" in value:
        return "contains a backslash"
    return None


def check_ae_title(value: str, what: str = "AE title") -> str:
    """Return ``value`` without surrounding spaces, or raise :class:`ValueError` saying why."""
    problem = ae_title_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {value!r} {problem}")
    return value.strip()


@dataclass(frozen=True)
class Destination:
    """A DICOM peer: AE title, host and port."""

    ae_title: str
    host: str
    port: int

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title, "AE title")
        object.__setattr__(self, "ae_title", self.ae_title.strip())
        _check_host(self.host)
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"port must be an integer, not {self.port!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range (1-65535)")

    @classmethod
    def parse(cls, text: str) -> Destination:
        """Parse ``AET@host:port`` (``AET@[ipv6]:port`` for IPv6); ValueError says what is wrong."""
        if not isinstance(text, str):
            raise ValueError(f"destination must be a string, not {type(text).__name__}")
        entry = text.strip()
        ae_title, at, address = entry.rpartition("@")
        if not at:
            raise ValueError(f"destination {text!r} is not AET@host:port (no '@')")
        if address.startswith("["):
            host, bracket, rest = address[1:].partition("]")
            if not bracket or not rest.startswith(":"):
                raise ValueError(f"destination {text!r}: write IPv6 hosts as [address]:port")
            port_text = rest[1:]
        else:
            host, colon, port_text = address.rpartition(":")
            if not colon:
                raise ValueError(f"destination {text!r} is not AET@host:port (no ':port')")
            if ":" in host:
                raise ValueError(f"destination {text!r}: write IPv6 hosts as [address]:port")
        if not port_text.isascii() or not port_text.isdigit():
            raise ValueError(f"destination {text!r}: port {port_text!r} is not a number")
        try:
            return cls(ae_title, host, int(port_text))
        except ValueError as exc:
            raise ValueError(f"destination {text!r}: {exc}") from None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def parse_destinations(text: str) -> list[Destination]:
    """Parse a comma-separated list such as ``RASCORE_DESTINATIONS``; empty items are skipped."""
    return [Destination.parse(item) for item in text.split(",") if item.strip()]


def _check_host(host: str) -> None:
    if not isinstance(host, str) or not host:
        raise ValueError("host is empty")
    if len(host) > 253:
        raise ValueError("host name is longer than 253 characters")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"host {host!r} is neither an IP address nor a valid host name")


def client_tls_context(
    ca: Path | str | None = None, cert: Path | str | None = None, key: Path | str | None = None
) -> ssl.SSLContext:
    """A TLS context for sending: TLS 1.2 or later; the server's certificate is verified
    against the CA bundle ``ca`` (the system's CAs when None) and must name the host; ``cert``
    (with ``key``, or a key inside it) goes as the client's certificate, for a PACS that
    authenticates its peers. A missing or unreadable file raises (a configuration error)."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if ca is None else str(ca)
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


def _tls_problem(tls: ssl.SSLContext, destination: Destination, timeout: float) -> str:
    """Why a TLS association failed: one more handshake, for OpenSSL's reason (pynetdicom
    only logs it)."""
    try:
        with (
            socket.create_connection((destination.host, destination.port), timeout=timeout) as raw,
            tls.wrap_socket(raw, server_hostname=destination.host) as wrapped,
        ):
            wrapped.settimeout(min(timeout, 5))
            wrapped.recv(1)  # TLS 1.3: the server refuses a client certificate after the handshake
    except ssl.SSLCertVerificationError as exc:
        return f"the server's certificate is not trusted ({exc.verify_message})"
    except ssl.SSLError as exc:
        return f"TLS handshake failed ({exc.reason or exc})"
    except TimeoutError:
        return "the TLS handshake succeeded, then the association failed"
    except OSError as exc:
        return f"TLS connection failed ({exc.strerror or exc})"
    return "the TLS handshake succeeded, then the server closed the connection"


def new_ae(calling_ae: str, timeout: float) -> AE:
    """An AE calling as ``calling_ae`` with every time-out set to ``timeout`` seconds."""
    ae = AE(ae_title=check_ae_title(calling_ae, "calling AE title"))
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


def associate(
    ae: AE,
    destination: Destination,
    contexts: list[PresentationContext],
    tls: ssl.SSLContext | None,
    timeout: float,
) -> tuple[Association | None, str | None]:
    """An established association, or None and the reason there is none."""
    tls_args = (tls, destination.host) if tls is not None else None
    try:
        assoc = ae.associate(
            destination.host,
            destination.port,
            contexts=contexts,
            ae_title=destination.ae_title,
            tls_args=tls_args,
        )
    except Exception as exc:  # pynetdicom raises for invalid arguments only
        return None, f"cannot associate with {destination}: {exc}"
    if assoc.is_established:
        return assoc, None
    if assoc.is_rejected:
        rsp: Any = assoc.acceptor.primitive
        try:
            detail = f"{rsp.result_str}, {rsp.source_str}: {rsp.reason_str}"
        except Exception:
            detail = "no reason given"
        return None, f"association rejected by {destination} ({detail})"
    if assoc.is_aborted and assoc.rejected_contexts and not assoc.accepted_contexts:
        return None, f"{destination} accepted none of the proposed presentation contexts"
    # pynetdicom only logs why the connection failed; ask the network once more for the reason.
    try:
        with socket.create_connection((destination.host, destination.port), timeout=timeout):
            pass
    except OSError as exc:
        return None, f"cannot connect to {destination}: {exc.strerror or exc}"
    if tls is not None:
        return (
            None,
            f"no TLS association with {destination}: {_tls_problem(tls, destination, timeout)}",
        )
    if assoc.is_aborted:
        return None, f"association with {destination} aborted during negotiation"
    return None, f"no association with {destination} (no answer to the request)"

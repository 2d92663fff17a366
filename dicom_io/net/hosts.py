"""Who is connected: host allow-lists, and connection counts shared by the receiver processes.

The caps on associations (all at once, and per calling host) must hold for the node as a
whole, however many processes accept on its port. :class:`ConnectionCounts` keeps the counts
in shared memory made before the receiver processes start: one row per process (so the rows
of a process that died can be given back), one column per calling host (by a hash of its
address, the same in every process), all behind one lock taken once per connection.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import socket
import threading
from collections.abc import Iterable
from multiprocessing.context import BaseContext
from typing import Any, cast

#: calling hosts that may hold connections at once (a table slot each); beyond, refused
HOST_SLOTS = 256


def _host_key(host: str) -> int:
    """A hash of ``host`` equal in every process (``hash()`` is salted per process); never 0,
    which marks a free slot."""
    return int.from_bytes(hashlib.blake2b(host.encode(), digest_size=7).digest(), "big") + 1


class _InProcess:
    """What :func:`multiprocessing.Array` gives, for the threads of one process."""

    def __init__(self, size: int) -> None:
        self._obj = (ctypes.c_int64 * size)()
        self._lock = threading.Lock()

    def get_lock(self) -> threading.Lock:
        return self._lock

    def get_obj(self) -> Any:
        return self._obj


class ConnectionCounts:
    """Connections held per calling host and process, in memory shared across processes.

    Picklable into a spawned process (as :mod:`multiprocessing` passes its arguments); each
    process counts in its own row (``row``), and reads the sum over all rows.
    """

    def __init__(self, processes: int = 1, context: BaseContext | None = None) -> None:
        """``context``: the :mod:`multiprocessing` context that will start the processes;
        None: one process only (its threads), with no shared memory or semaphore to make."""
        self.processes = processes
        self.row = 0
        # keys (HOST_SLOTS), then the counts of each process (processes × HOST_SLOTS)
        size = HOST_SLOTS * (1 + processes)
        if context is None:
            self._table: Any = _InProcess(size)
        else:
            self._table = cast(Any, context).Array("q", size, lock=True)

    def for_process(self, row: int) -> ConnectionCounts:
        """The same counts, counting in row ``row`` (one per receiver process)."""
        if not 0 <= row < self.processes:
            raise ValueError(f"row must be 0-{self.processes - 1}")
        self.row = row
        return self

    def _held(self, table: Any, slot: int) -> int:
        return sum(table[HOST_SLOTS * (1 + p) + slot] for p in range(self.processes))

    def acquire(self, host: str, per_host: int) -> str | None:
        """Count a connection from ``host``; None, or why it is refused (then not counted):
        the host already holds ``per_host`` connections (0: no cap), or the table is full."""
        key = _host_key(host)
        with self._table.get_lock():
            table = self._table.get_obj()
            free = None
            for slot in range(HOST_SLOTS):
                if table[slot] == key:
                    break
                if free is None and (table[slot] == 0 or not self._held(table, slot)):
                    free = slot
            else:
                if free is None:
                    return f"{HOST_SLOTS} hosts already connected"
                slot = free
                table[slot] = key
                for p in range(self.processes):  # a stale key's counts are all 0 already
                    table[HOST_SLOTS * (1 + p) + slot] = 0
            held = self._held(table, slot)
            if per_host and held >= per_host:
                return f"host already holds {held} connection(s)"
            table[HOST_SLOTS * (1 + self.row) + slot] += 1
            return None

    def release(self, host: str) -> None:
        """Give back one connection of ``host`` counted by this process."""
        key = _host_key(host)
        with self._table.get_lock():
            table = self._table.get_obj()
            for slot in range(HOST_SLOTS):
                at = HOST_SLOTS * (1 + self.row) + slot
                if table[slot] == key and table[at] > 0:
                    table[at] -= 1
                    return

    def held(self, host: str) -> int:
        """Connections ``host`` holds across all processes."""
        key = _host_key(host)
        with self._table.get_lock():
            table = self._table.get_obj()
            for slot in range(HOST_SLOTS):
                if table[slot] == key:
                    return self._held(table, slot)
        return 0

    def total(self) -> int:
        """Connections held across all processes and hosts."""
        with self._table.get_lock():
            table = self._table.get_obj()
            return sum(table[HOST_SLOTS:])

    def per_process(self) -> list[int]:
        """Connections held by each process (for tests and logs)."""
        with self._table.get_lock():
            table = self._table.get_obj()
            rows = range(self.processes)
            return [sum(table[HOST_SLOTS * (1 + p) : HOST_SLOTS * (2 + p)]) for p in rows]

    def forget_process(self, row: int) -> None:
        """Give back every connection counted by process ``row`` (it died holding them)."""
        with self._table.get_lock():
            table = self._table.get_obj()
            for slot in range(HOST_SLOTS):
                table[HOST_SLOTS * (1 + row) + slot] = 0


def peer_host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) else str(address)


def in_networks(host: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def resolve_hosts(hosts: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """IP addresses, networks (CIDR) and host names (resolved now) as a list of networks."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in hosts:
        entry = entry.strip()
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise ValueError(f"allowed host {entry!r} cannot be resolved: {exc}") from exc
        for info in infos:
            networks.append(ipaddress.ip_network(str(info[4][0]).split("%", 1)[0]))
    return networks

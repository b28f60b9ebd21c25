"""Connections per client address, capped: one `AddressLimiter` per listener.

Every listener that accepts TCP connections (the HTTP server with its WebSocket, each
hpfeeds endpoint, each syslog TCP/TLS listener) asks its limiter for a slot when a
connection arrives and gives it back when the connection ends. Past the cap the
connection is closed at once and counted in
`honeyatlas_connections_refused_total{listener, reason="per_address_limit"}`: one address
can then hold only so many connections open, however slowly it talks (slowloris).

An IPv6 client is keyed by its /64, the block one subscriber gets, or one host could take
a fresh address for every connection; an IPv4-mapped IPv6 address counts as its IPv4.
Behind a reverse proxy every connection comes from the proxy: raise the cap there (or set
0, no cap) and let the proxy cap per client. Loopback is not exempt.

This module counts; closing and timing connections belongs to each listener.
"""

from __future__ import annotations

import ipaddress

from honeyatlas.metrics import Metrics


def address_key(host: str) -> str:
    """The unit a cap counts: the IPv4 address, or the /64 of an IPv6 one."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # not an IP address (a Unix socket path): itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AddressLimiter:
    """Open connections per client address on one listener; `max_per_address` 0: no cap."""

    def __init__(self, listener: str, max_per_address: int, metrics: Metrics) -> None:
        self.listener = listener
        self.max_per_address = max_per_address
        self._metrics = metrics
        self._open: dict[str, int] = {}

    def acquire(self, peer: object) -> str | None:
        """A slot for a connection from `peer` (a socket's peername): its key, to give back
        with `release`; None when the address is at its cap (counted)."""
        host = peer[0] if isinstance(peer, tuple) and peer else str(peer)
        key = address_key(str(host))
        count = self._open.get(key, 0)
        if self.max_per_address and count >= self.max_per_address:
            self.refused("per_address_limit")
            return None
        self._open[key] = count + 1
        return key

    def release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)

    def open_connections(self, key: str | None = None) -> int:
        """Connections holding a slot, from one address key or in all."""
        return self._open.get(key, 0) if key is not None else sum(self._open.values())

    def refused(self, reason: str) -> None:
        """Count a connection this listener refused or closed for breaking a limit."""
        self._metrics.inc("honeyatlas_connections_refused_total", listener=self.listener, reason=reason)

    def timed_out(self, phase: str) -> None:
        """Count a connection this listener closed for a deadline, by what it was waiting for."""
        self._metrics.inc("honeyatlas_connections_timed_out_total", listener=self.listener, phase=phase)

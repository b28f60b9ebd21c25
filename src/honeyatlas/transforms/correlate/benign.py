"""Known benign sources: research scanners the operator lists by network.

Internet-wide research scanners touch every sensor on a few ports many times a day; they
are multi-sensor attackers by definition and may share a banner or a probe sequence, but
an analyst has nothing to do about them. Sources inside `correlation.benign_networks` are
kept out of the multi-sensor and campaign detectors (`Correlator` and the source stage of a
worker ask `address in networks`); their events are still stored, counted and scanned for
scans and payloads. No list ships: docs/correlation.md says how to fill it.
"""

from __future__ import annotations

import ipaddress

from honeyatlas.errors import ConfigError

_CACHE_SIZE = 65_536  # addresses answered; a cleared cache only costs a re-parse


class BenignNetworks:
    def __init__(self, networks: list[str]) -> None:
        parsed = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ConfigError("correlation.benign_networks", f"{text!r} is not a network: {exc}") from exc
        self._networks = tuple(parsed)
        self._answers: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        if not self._networks or not isinstance(address, str):
            return False
        known = self._answers.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                known = False
            else:
                known = any(ip.version == net.version and ip in net for net in self._networks)
            if len(self._answers) >= _CACHE_SIZE:
                self._answers.clear()
            self._answers[address] = known
        return known

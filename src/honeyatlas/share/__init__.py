"""Sharing: what honeyatlas saw, in the formats other tools read.

What lives here: the IoC feed of attacker addresses (CSV and JSON, with parsers so the
feed round-trips), STIX 2.1 bundles and MISP events of incidents. Pure functions from
`AttackerSummary` and `Incident` values to documents: no I/O, no clock, no store; the web
API chooses the rows (only shareable addresses) and serves the bytes. docs/correlation.md,
section "Sharing", documents every format.
"""

from honeyatlas.share.ioc import IOC_CSV_HEADER, ioc_csv, ioc_json, parse_ioc_csv, parse_ioc_json
from honeyatlas.share.misp import misp_event
from honeyatlas.share.stix import pattern_string, stix_bundle

__all__ = [
    "IOC_CSV_HEADER",
    "ioc_csv",
    "ioc_json",
    "misp_event",
    "parse_ioc_csv",
    "parse_ioc_json",
    "pattern_string",
    "stix_bundle",
]

"""Lookup tables that transforms consult to add what an event alone cannot tell.

What lives here: `geoip` (address -> country, city, coordinates, ASN from MMDB files, with
licence-clean country and ASN databases bundled in `data/`). Tables are pure in the
pipeline's sense: constructors do no I/O, `open()` and `close()` are explicit, and no
table keeps global state or reads configuration itself. What must not live here: the
transform that applies a table to events (that is `transforms/`), or any network access.
"""

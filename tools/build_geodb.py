"""Rebuild the GeoIP databases bundled in `honeyatlas.enrichment.data`.

A maintainer tool, never run at install: it needs `npm` on PATH, access to the npm registry
and the `geodata` extra (mmdb-writer, netaddr). It writes two files:

  country.mmdb  copied from @ip-location-db/geo-whois-asn-country-mmdb (IPv4 + IPv6,
                records `{"country_code": "FR"}`), after checking that layout.
  asn.mmdb      built from the CSV files of @ip-location-db/asn, records in the
                GeoLite2-ASN layout `{"autonomous_system_number": int,
                "autonomous_system_organization": str}`, IPv4 stored under ::/96.

The package versions are pinned so that a rebuild is reproducible; the ASN database gets
the package's own date as its build epoch, so the same input gives the same bytes. After
a version bump, update data/ATTRIBUTION.md and rerun tools/build_centroids.mjs if the
country database returns new codes (this script lists the ones without a centroid).

    .venv/bin/python tools/build_geodb.py [--out DIR] [--country-package SPEC] [--asn-package SPEC]
"""

from __future__ import annotations

import argparse
import csv
import io
import ipaddress
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import maxminddb
from mmdb_writer import MMDBWriter
from netaddr import IPRange, IPSet

COUNTRY_PACKAGE = "@ip-location-db/geo-whois-asn-country-mmdb@2.3.2026061719"
COUNTRY_MEMBER = "package/geo-whois-asn-country.mmdb"
ASN_PACKAGE = "@ip-location-db/asn@2.3.2026061719"
ASN_MEMBERS = ("package/asn-ipv4.csv", "package/asn-ipv6.csv")

DATA_DIR = Path(__file__).resolve().parent.parent / "src" / "honeyatlas" / "enrichment" / "data"

# IPv4 lives under ::/96 in the merged tree; an IPv6 row there would overwrite it.
IPV4_SUBTREE = ipaddress.ip_network("::/96")


def log(message: str) -> None:
    print(message, flush=True)


def npm_pack(spec: str, dest: Path) -> tuple[Path, str]:
    """Download one package tarball from the registry; return its path and exact version."""
    log(f"npm pack {spec}")
    done = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(dest)],
        check=True,
        capture_output=True,
        text=True,
        cwd=dest,
    )
    info = json.loads(done.stdout)[0]
    tarball = dest / info["filename"]
    log(f"  {info['name']}@{info['version']}  {tarball.stat().st_size / 1e6:.1f} MB  {info['integrity']}")
    return tarball, info["version"]


def read_member(tarball: Path, member: str) -> bytes:
    with tarfile.open(tarball) as archive:
        handle = archive.extractfile(member)
        if handle is None:
            raise SystemExit(f"{tarball.name}: {member} is not a regular file")
        return handle.read()


def version_epoch(version: str) -> int:
    """ip-location-db versions end with the data date as YYYYMMDDHH (2.3.2026061719)."""
    stamp = version.rsplit(".", 1)[-1]
    return int(datetime.strptime(stamp, "%Y%m%d%H").replace(tzinfo=UTC).timestamp())


def build_country(tarball: Path, out: Path) -> set[str]:
    """Check the country database's record layout, then copy it; return the codes it holds."""
    raw = read_member(tarball, COUNTRY_MEMBER)
    out.write_bytes(raw)
    codes: set[str] = set()
    networks = 0
    with maxminddb.open_database(str(out), maxminddb.MODE_MMAP) as reader:
        meta = reader.metadata()
        log(f"  country: type {meta.database_type!r}, ip_version {meta.ip_version}, {meta.node_count} nodes")
        for _network, record in reader:
            networks += 1
            if not isinstance(record, dict) or set(record) != {"country_code"}:
                raise SystemExit(f"unexpected country record layout: {record!r}")
            codes.add(record["country_code"])
    bad = sorted(code for code in codes if len(code) != 2 or not code.isalpha() or not code.isupper())
    if bad:
        raise SystemExit(f"country codes that are not ISO 3166-1 alpha-2: {bad}")
    log(f"  country: {networks} networks, {len(codes)} codes, {out.stat().st_size / 1e6:.1f} MB")
    return codes


def asn_rows(text: str, source: str) -> Iterator[tuple[IPRange, int, str]]:
    """Yield (range, asn, org) from one sorted CSV; reject malformed rows.

    The data has a few overlapping rows (one of the package's known bugs): the earlier row
    keeps the overlap and the later one is clipped, so a rebuild never depends on how the
    writer resolves a conflict.
    """
    previous_end = -1
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if len(row) != 4:
            raise SystemExit(f"{source}:{line_no}: expected 4 columns, got {row!r}")
        first, last = ipaddress.ip_address(row[0]), ipaddress.ip_address(row[1])
        if first.version != last.version or last < first:
            raise SystemExit(f"{source}:{line_no}: bad range {row[0]}-{row[1]}")
        if first.version == 6 and first in IPV4_SUBTREE:
            raise SystemExit(f"{source}:{line_no}: IPv6 range under ::/96 would shadow IPv4 data")
        if int(first) <= previous_end:
            if int(last) <= previous_end:
                log(f"  {source}:{line_no}: {row[0]}-{row[1]} lies inside the previous row, dropped")
                continue
            log(f"  {source}:{line_no}: {row[0]}-{row[1]} overlaps the previous row, clipped")
            first = type(first)(previous_end + 1)
        previous_end = int(last)
        yield IPRange(str(first), str(last)), int(row[2]), row[3].strip()


class PinnedEpochWriter(MMDBWriter):
    """MMDBWriter stamps the wall clock; a fixed epoch makes rebuilds byte-identical."""

    def __init__(self, *, build_epoch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._build_epoch = build_epoch

    def _build_meta(self) -> dict[str, Any]:
        return {**super()._build_meta(), "build_epoch": self._build_epoch}


def build_asn(tarball: Path, version: str, out: Path) -> None:
    writer = PinnedEpochWriter(
        build_epoch=version_epoch(version),
        ip_version=6,
        ipv4_compatible=True,
        database_type="honeyatlas-ASN",
        languages=["en"],
        description={"en": f"IP to ASN from @ip-location-db/asn {version} (RouteViews, NRO, DB-IP; CC BY 4.0)"},
    )
    # One dict per distinct (asn, org): the writer dedupes equal records in the data section,
    # sharing the objects also keeps the in-memory tree small.
    records: dict[tuple[int, str], dict[str, Any]] = {}
    rows = 0
    started = time.monotonic()
    for member in ASN_MEMBERS:
        text = read_member(tarball, member).decode("utf-8")
        for ip_range, asn, org in asn_rows(text, member):
            key = (asn, org)
            record = records.get(key)
            if record is None:
                record = {"autonomous_system_number": asn, "autonomous_system_organization": org}
                records[key] = record
            writer.insert_network(IPSet(ip_range), record)
            rows += 1
            if rows % 50_000 == 0:
                log(f"  asn: {rows} ranges inserted ({time.monotonic() - started:.0f} s)")
    log(f"  asn: {rows} ranges, {len(records)} distinct records")
    log("  asn: writing")
    writer.to_db_file(str(out))
    log(f"  asn: {out.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.0f} s")


def report_missing_centroids(codes: set[str], centroids_path: Path) -> None:
    if not centroids_path.exists():
        log(f"  {centroids_path.name} not found: run tools/build_centroids.mjs")
        return
    known = set(json.loads(centroids_path.read_text(encoding="utf-8")))
    missing = sorted(codes - known)
    log(f"  country codes without a centroid: {', '.join(missing) if missing else 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help=f"output directory (default {DATA_DIR})")
    parser.add_argument("--country-package", default=COUNTRY_PACKAGE, help="npm package spec")
    parser.add_argument("--asn-package", default=ASN_PACKAGE, help="npm package spec")
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        raise SystemExit("npm is not on PATH")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="honeyatlas-geodb-") as tmp:
        work = Path(tmp)
        country_tgz, _ = npm_pack(args.country_package, work)
        asn_tgz, asn_version = npm_pack(args.asn_package, work)
        # Build into the temp dir and move into place at the end, so a failure never
        # leaves a half-written database in the package.
        country_tmp, asn_tmp = work / "country.mmdb", work / "asn.mmdb"
        codes = build_country(country_tgz, country_tmp)
        build_asn(asn_tgz, asn_version, asn_tmp)
        shutil.move(country_tmp, args.out / "country.mmdb")
        shutil.move(asn_tmp, args.out / "asn.mmdb")
    log(f"wrote {args.out / 'country.mmdb'} and {args.out / 'asn.mmdb'}")
    report_missing_centroids(codes, args.out / "country_centroids.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

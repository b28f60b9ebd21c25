"""Builders of the parts every role shares: GeoIP, adapters, transforms, and their metrics.

Each builder takes the one Config and returns a component that has done no I/O yet; the
role that uses it starts and stops it. Nothing here picks a backend (store/open.py does).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

from honeyatlas.adapters import Adapter, load_adapters
from honeyatlas.adapters.detect import AUTO
from honeyatlas.adapters.mapped import build_mapped_adapter
from honeyatlas.config import Config
from honeyatlas.enrichment.countries import BUNDLED_SHAPES, CountryShapes
from honeyatlas.enrichment.geoip import (
    BUNDLED_ASN_DB,
    BUNDLED_CENTROIDS,
    BUNDLED_COUNTRY_DB,
    DEFAULT_CITY_SEARCH_DIRS,
    GeoIP,
    find_city_database,
    load_centroids,
)
from honeyatlas.errors import ConfigError
from honeyatlas.metrics import Metrics
from honeyatlas.transforms.correlate import Correlator
from honeyatlas.transforms.dedupe import SessionDeduplicator
from honeyatlas.transforms.redact import PublicView


def _configured(value: str | None, default: Path | None) -> Path | None:
    """A configured database path, used as given: a missing or unreadable file is a fault the
    service reports in health and recovers from when the file appears (enrichment/geoip.py)."""
    return default if value is None else Path(value)


def _city_database(config: Config) -> Path | None:
    geo = config.geoip
    if geo.city_db_path is not None:
        return _configured(geo.city_db_path, None)
    if not geo.search_city_db:
        return None
    return find_city_database([config.data_dir / "geoip", *DEFAULT_CITY_SEARCH_DIRS])


def build_geoip(config: Config, metrics: Metrics) -> GeoIP:
    """GeoIP over the configured (or bundled) databases; checks the paths exist, opens nothing."""
    geo = config.geoip
    geoip = GeoIP(
        city_path=_city_database(config),
        country_path=_configured(geo.country_db_path, BUNDLED_COUNTRY_DB) or BUNDLED_COUNTRY_DB,
        asn_path=_configured(geo.asn_db_path, BUNDLED_ASN_DB),
        centroids_path=BUNDLED_CENTROIDS,
        cache_size=geo.cache_size,
    )
    for counter in ("hits", "misses", "evictions"):
        metrics.gauge(f"honeyatlas_geoip_cache_{counter}_total",
                      lambda counter=counter: [((), geoip.cache_info()[counter])])
    metrics.gauge("honeyatlas_geoip_database_faults", lambda: [((), len(geoip.faults()))])
    metrics.gauge("honeyatlas_geoip_reloads_total", lambda: [((), geoip.reload_info()["reloads"])])
    metrics.gauge("honeyatlas_geoip_load_failures_total", lambda: [((), geoip.reload_info()["load_failures"])])
    return geoip


def geoip_status(geoip: GeoIP) -> dict[str, Any]:
    """GeoIP in `/api/v1/health`; `faults` lists each database not in use as it is on disk."""
    geoip.refresh()  # a fixed file shows here even while no event arrives
    city = geoip.city_database
    return {
        "precision": "city" if city else "country",
        "city_database": str(city) if city else None,
        "faults": geoip.faults(),
        "cache": geoip.cache_info(),
    }


def fault_report(metrics: Metrics, **components: Callable[[], str | None]) -> Callable[[], dict[str, str]]:
    """What `/api/v1/health` lists as faults: each component's current fault ("disk": the
    free-space floor, "store": the last write failed, "geoip": a database missing or
    corrupt), and the `honeyatlas_faults` gauge (1 per component in fault) for alerting."""

    def faults() -> dict[str, str]:
        found = {name: fault() for name, fault in components.items()}
        return {name: text for name, text in found.items() if text}

    metrics.gauge("honeyatlas_faults", lambda: [((("component", name),), 1) for name in faults()])
    return faults


def geoip_fault(geoip: GeoIP) -> str | None:
    geoip.refresh()  # a file put back shows as fixed at once, even while no event arrives
    return "; ".join(geoip.faults()) or None


def sensor_timezone(config: Config) -> zoneinfo.ZoneInfo:
    # Checked when the config is loaded (config.py); this cannot fail for a loaded Config.
    return zoneinfo.ZoneInfo(config.ingest.sensor_timezone)


def build_adapters(config: Config) -> dict[str, Adapter]:
    """Entry-point adapters (built-in and third-party) plus the configured mappings."""
    adapters = load_adapters()
    for name, mapping in config.mappings.items():
        if name in adapters or name == AUTO:
            raise ConfigError(f"mappings.{name}", "a format with this name already exists; rename the mapping")
        if not re.match(r"^[a-z0-9][a-z0-9._-]{0,63}$", name):
            raise ConfigError(f"mappings.{name}", "use a lowercase name of letters, digits, '.', '_' or '-'")
        adapters[name] = build_mapped_adapter(name, mapping)
    return adapters


def build_deduplicator(config: Config, metrics: Metrics) -> SessionDeduplicator:
    dedup = SessionDeduplicator(
        ttl_seconds=config.ingest.session_dedup_ttl_seconds,
        max_sessions=config.ingest.session_dedup_max_sessions,
    )
    metrics.gauge("honeyatlas_dedupe_sessions", lambda: [((), len(dedup))])
    metrics.gauge(
        "honeyatlas_dedupe_evictions",
        lambda: [((("reason", "size"),), dedup.evicted_by_size), ((("reason", "age"),), dedup.evicted_by_age)],
    )
    return dedup


def build_correlator(config: Config, metrics: Metrics) -> Correlator | None:
    if not config.correlation.enabled:
        return None
    correlator = Correlator(config.correlation)
    detectors = correlator.detectors
    metrics.gauge("honeyatlas_correlation_tracked",
                  lambda: [((("detector", name),), d.tracked) for name, d in detectors.items()])
    metrics.gauge("honeyatlas_correlation_evictions_total",
                  lambda: [((("detector", name),), d.evictions) for name, d in detectors.items()])
    metrics.gauge("honeyatlas_incidents_open", lambda: [((), correlator.open_incidents)])
    metrics.gauge("honeyatlas_incidents_opened_total",
                  lambda: [((("kind", kind),), n) for kind, n in sorted(correlator.opened.items())])
    metrics.gauge("honeyatlas_incidents_forced_closures_total", lambda: [((), correlator.forced_closures)])
    return correlator


def build_public_view(config: Config) -> PublicView | None:
    """The public map's redaction when `public.enabled`; None when the public view is off."""
    if not config.public.enabled:
        return None
    return PublicView(lambda: CountryShapes.load(BUNDLED_SHAPES, load_centroids(BUNDLED_CENTROIDS)),
                      config.public.sensor_aliases)

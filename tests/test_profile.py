"""Attacker classification: roles from activity counts, most serious first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from honeyatlas.incident import doubling_seconds
from honeyatlas.profile import ActivityCounts, Role, classify


def counts(**values: int) -> ActivityCounts:
    base = {"failed_logins": 0, "successful_logins": 0, "files": 0, "ports": 1, "sensors": 1}
    base.update(values)
    return ActivityCounts(**base)


@pytest.mark.parametrize(
    ("values", "roles"),
    [
        ({}, [Role.VISITOR]),
        ({"failed_logins": 4}, [Role.VISITOR]),
        ({"failed_logins": 5}, [Role.BRUTE_FORCER]),
        ({"failed_logins": 9, "successful_logins": 1}, [Role.INTRUDER, Role.BRUTE_FORCER]),
        ({"successful_logins": 1, "files": 2}, [Role.MALWARE_DROPPER, Role.INTRUDER]),
        ({"ports": 5}, [Role.SCANNER]),
        ({"sensors": 3, "failed_logins": 6}, [Role.BRUTE_FORCER, Role.SCANNER]),
        ({"scan_incidents": 1}, [Role.SCANNER]),
        ({"ports": 40, "successful_logins": 1}, [Role.INTRUDER]),  # logged in: more than a scanner
    ],
)
def test_classification(values: dict[str, int], roles: list[Role]) -> None:
    assert classify(counts(**values)) == roles


def test_doubling_time_of_a_curve_that_doubles_every_hour() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # cumulative count n reached at t = log2(n) hours: 1, 2, 4, 8 sensors at 0, 1, 2, 3 h
    sightings = [t0 + timedelta(hours=h) for h in (0, 1, 1.58496, 2, 2.32193, 2.58496, 2.80735, 3)]
    assert doubling_seconds(sightings) == pytest.approx(3600, rel=0.01)
    assert doubling_seconds(sightings[:2]) is None
    assert doubling_seconds([t0, t0, t0]) is None

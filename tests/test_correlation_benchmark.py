"""The correlation benchmark at smoke size: a real Service replays a labelled trace, every
detector meets the bars, replaying in small batches gives what one batch gives, and state
stays within its bounds on a flood of distinct sources."""

from __future__ import annotations

from pathlib import Path

from benchmarks.correlation import SMOKE_SMALL_BOUNDS, bounded_state_run, run_scenario, scenario_options

from honeyatlas.incident import IncidentKind


async def test_every_detector_meets_the_bars_and_replay_equals_at_once(tmp_path: Path) -> None:
    result = await run_scenario("baseline", tmp_path, scenario_options("baseline", smoke=True))
    assert result["determinism"]["identical"], result["determinism"]
    assert result["replay"]["mean_batch"] < 50  # small batches: runs of one sensor in event-time order
    assert set(result["detectors"]) == {str(k) for k in IncidentKind}
    for kind, score in result["detectors"].items():
        assert score["positives"] >= 5, kind
        assert score["precision"] >= 0.95 and score["recall"] >= 0.95, (kind, score)
        assert score["delay_min_seconds"] >= 0 and score["delay_max_seconds"] <= 5, (kind, score)
        assert score["hard_negatives"] >= 5 and score["hard_negatives_detected"] == 0, (kind, score)


def test_state_stays_within_small_bounds_on_a_flood_of_sources() -> None:
    run = bounded_state_run({"label": "small", "bounds": SMOKE_SMALL_BOUNDS, "checkpoint_every": 5_000,
                             "rate": 8.0, "duration_seconds": 2700.0})
    assert run["distinct_sources"] > 10 * SMOKE_SMALL_BOUNDS["max_sources"]
    assert run["bounds_respected"], run["violations"]
    assert run["peak_tracked"]["multi_sensor"] == SMOKE_SMALL_BOUNDS["max_sources"]  # full, never over
    assert run["evictions"]["multi_sensor"] > 0 and run["evictions"]["scan"] > 0
    assert all(point["rss_mib"] > 0 for point in run["checkpoints"])

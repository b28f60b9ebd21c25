"""Every metric the code counts has HELP text (honeyatlas.metrics.HELP) and a row in
docs/metrics.md, and nothing is documented that the code no longer counts.

Names are found in the source, not in a running server, so a counter only reached on an
error path is checked too: the first argument of every `.inc(...)` and `.gauge(...)` call,
where an f-string (`f"honeyatlas_geoip_cache_{counter}_total"`) stands for every name it
can form.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from honeyatlas.metrics import HELP

ROOT = Path(__file__).parents[1]
SOURCE = ROOT / "src" / "honeyatlas"
DOC = (ROOT / "docs" / "metrics.md").read_text()
DOCUMENTED = set(re.findall(r"^\| `(honeyatlas_[a-z0-9_]+)` \|", DOC, re.MULTILINE))


def name_patterns() -> dict[str, str]:
    """Regex of each metric name the code registers or increments -> where."""
    found: dict[str, str] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("inc", "gauge") and node.args):
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                pattern = re.escape(first.value)
            elif isinstance(first, ast.JoinedStr):
                pattern = "".join(re.escape(part.value) if isinstance(part, ast.Constant) else "[a-z0-9_]+"
                                  for part in first.values)
            else:
                continue  # a name held in a variable: not ours to guess (none today)
            if pattern.startswith("honeyatlas_"):
                found[pattern] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


PATTERNS = name_patterns()


def test_the_scan_finds_the_known_metrics() -> None:
    assert len(PATTERNS) > 20
    assert re.escape("honeyatlas_records_received_total") in PATTERNS
    assert any(re.fullmatch(p, "honeyatlas_geoip_cache_hits_total") for p in PATTERNS)  # an f-string


def test_every_counted_metric_has_help_text() -> None:
    missing = {where: p for p, where in PATTERNS.items() if not any(re.fullmatch(p, name) for name in HELP)}
    assert not missing, f"add HELP text to honeyatlas/metrics.py for: {missing}"
    assert all(text.strip() and text != name for name, text in HELP.items())


def test_every_metric_is_documented() -> None:
    missing = sorted(set(HELP) - DOCUMENTED)
    assert not missing, f"add a row to docs/metrics.md for: {missing}"
    stale = sorted(DOCUMENTED - set(HELP))
    assert not stale, f"docs/metrics.md lists metrics with no HELP text: {stale}"


def test_every_help_entry_is_counted_by_the_code() -> None:
    unused = sorted(name for name in HELP if not any(re.fullmatch(p, name) for p in PATTERNS))
    assert not unused, f"HELP text for metrics nothing counts any more: {unused}"


def test_one_name_one_meaning_for_drops() -> None:
    """Records lost before adaptation are records_dropped (by source); events dropped after it
    are events_dropped (by component). The sources that drop raw records use the first."""
    for module in ("sources/syslog.py", "sources/hpfeeds.py", "sources/hpfeeds_subscriber.py"):
        text = (SOURCE / module).read_text()
        assert "honeyatlas_events_dropped_total" not in text, module
        assert "honeyatlas_records_dropped_total" in text, module

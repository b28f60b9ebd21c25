"""Format `auto`: every registered format with a `detect` rule recognises its real samples
(tests/data/samples, copies of the captures in /work/shared/samples) and the records shown in
its documentation page, as that format."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from honeyatlas.adapters import Adapter, load_adapters
from honeyatlas.adapters.detect import AutoDetector
from tests.adapters.golden import DATA

SAMPLES = DATA / "samples"
FORMAT_DOCS = Path(__file__).resolve().parents[2] / "docs" / "formats"
ADAPTERS = load_adapters()
DETECTED = sorted(name for name, adapter in ADAPTERS.items() if adapter.detect is not None)
AUTO = AutoDetector(ADAPTERS)
# Samples not named after their format; an hpfeeds capture holds the records in `payload`.
EXTRA_SAMPLES = {
    "conpot": ("conpot-jsonlog.json",),
    "opencanary": ("opencanary-more.jsonl", "opencanary-hpfeeds.json"),
}
# T-Pot wraps other honeypots' records; auto may give such a record to the adapter of the
# honeypot its `type` names (a T-Pot dionaea record to `dionaea`), which reads more of it.
GENERIC = {"tpot"}
HERALDING = {"type": "Heralding", "src_ip": "198.51.100.23", "src_port": 40122, "dest_ip": "172.20.0.5",
             "dest_port": 21, "protocol": "ftp", "username": "admin", "password": "admin123"}


def decoded(line: str, adapter: Adapter) -> Any:
    if adapter.input == "text":
        return line
    record = json.loads(line)
    if isinstance(record, dict) and isinstance(record.get("payload"), dict) and "channel" in record:
        return record["payload"]
    return record


def sample_records(name: str) -> list[Any]:
    paths = [path for suffix in (".jsonl", ".json", ".txt") if (path := SAMPLES / f"{name}{suffix}").is_file()]
    paths += [SAMPLES / extra for extra in EXTRA_SAMPLES.get(name, ())]
    assert paths, f"format {name} has a detect rule but no sample in tests/data/samples/{name}.jsonl"
    adapter = ADAPTERS[name]
    return [decoded(line, adapter) for path in paths for line in path.read_text().splitlines() if line.strip()]


def documented_records(name: str) -> list[Any]:
    """The JSON records of the ```json blocks of docs/formats/NAME.md (one or more objects each)."""
    page = FORMAT_DOCS / f"{name}.md"
    records: list[Any] = []
    decoder = json.JSONDecoder()
    for block in re.findall(r"```json\n(.*?)```", page.read_text(), re.DOTALL):
        at = 0
        while block[at:].strip():
            at += len(block[at:]) - len(block[at:].lstrip())
            record, at = decoder.raw_decode(block, at)
            records.append(record)
    return records


def assert_detected_as(name: str, record: Any) -> None:
    picked = AUTO.pick(record).name
    if name in GENERIC and picked != name:
        assert isinstance(record, dict) and picked == str(record.get("type")).lower(), (name, picked, record)
    else:
        assert picked == name, f"a {name} record was taken for {picked}: {record}"


@pytest.mark.parametrize("name", DETECTED)
def test_every_sample_record_is_detected_as_its_format(name: str) -> None:
    records = sample_records(name)
    for record in records:
        assert_detected_as(name, record)


@pytest.mark.parametrize("name", DETECTED)
def test_every_documented_record_is_detected_as_its_format(name: str) -> None:
    for record in documented_records(name):
        assert_detected_as(name, record)


def test_tpot_records_without_logstash_additions_are_still_tpot() -> None:
    """What the tpot page documents as T-Pot's shape (`type`, src_ip, dest_ip, dest_port) is
    enough: an export without `@timestamp` and the `t-pot_*` fields is recognised too."""
    assert AUTO.pick(HERALDING).name == "tpot"
    assert HERALDING in documented_records("tpot")
    for record in sample_records("tpot"):
        if "src_ip" not in record:
            continue  # a Suricata stats record: only its t-pot_* fields mark it
        bare = {k: v for k, v in record.items() if k not in ("@timestamp", "timestamp") and not k.startswith("t-pot_")}
        assert_detected_as("tpot", bare)

"""The config: precedence, validation messages naming the key, and docs for every option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from honeyatlas.config import load_config, option_names
from honeyatlas.errors import ConfigError

DOC = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()


def test_every_option_is_documented_and_nothing_else() -> None:
    documented = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", DOC, flags=re.M)
    assert sorted(documented) == sorted(option_names())


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "h.toml"
    file.write_text('[server]\nport = 7000\nhost = "0.0.0.0"\n[storage]\ndata_dir = "/tmp/x"\n')
    config = load_config(file, environ={"HONEYATLAS_SERVER_PORT": "7100"})
    assert (config.server.host, config.server.port, config.storage.data_dir) == ("0.0.0.0", 7100, "/tmp/x")
    config = load_config(file, environ={"HONEYATLAS_SERVER_PORT": "7100"}, overrides={"server": {"port": 7200}})
    assert config.server.port == 7200
    assert load_config(environ={"HONEYATLAS_DEMO_ENABLED": "true"}).demo.enabled is True


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"HONEYATLAS_SERVER_PORT": "eighty"}, "server.port"),
        ({"HONEYATLAS_SERVER_PORT": "70000"}, "server.port"),
        ({"HONEYATLAS_SERVER_PROT": "1"}, "HONEYATLAS_SERVER_PROT"),
        ({"HONEYATLAS_LIVE_FRAME_INTERVAL_SECONDS": "5"}, "live.frame_interval_seconds"),
    ],
)
def test_errors_name_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ)
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[nosuch]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(bad, environ={})
    bad.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad, environ={})
    assert caught.value.key == "server.prot"


@pytest.mark.parametrize("role", ["ingest", "worker", "web"])
def test_a_cluster_role_says_what_it_needs(role: str) -> None:
    with pytest.raises(ConfigError) as missing_bus:
        load_config(environ={}, overrides={"server": {"role": role}})
    assert missing_bus.value.key == "bus.url" and "nats://" in str(missing_bus.value)
    with pytest.raises(ConfigError) as missing_store:
        load_config(environ={}, overrides={"server": {"role": role}, "bus": {"url": "nats://127.0.0.1:4222"}})
    assert missing_store.value.key == "storage.backend" and "postgresql" in str(missing_store.value)
    config = load_config(environ={"HONEYATLAS_SERVER_ROLE": role, "HONEYATLAS_BUS_URL": "nats://127.0.0.1:4222",
                                  "HONEYATLAS_STORAGE_BACKEND": "postgresql",
                                  "HONEYATLAS_STORAGE_URL": "postgresql://u@127.0.0.1/db"})
    assert (config.server.role, config.storage.backend) == (role, "postgresql")


def test_workers_partition_by_source_address() -> None:
    with pytest.raises(ConfigError) as index:
        load_config(environ={}, overrides={"worker": {"index": 2, "count": 2}})
    assert index.value.key == "worker.index"
    with pytest.raises(ConfigError) as grouping:
        load_config(environ={}, overrides={"worker": {"count": 2}, "correlation": {"multi_sensor_group_by": "asn"}})
    assert grouping.value.key == "correlation.multi_sensor_group_by"

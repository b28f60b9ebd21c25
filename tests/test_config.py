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

"""Settings: defaults, the documented example, and errors that name their source."""

from pathlib import Path

import pytest

from davdisk import config
from davdisk.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_example_documents_every_setting_with_its_default() -> None:
    example = ROOT / "config" / "davdisk.example.toml"
    assert example.read_text() == config.example_toml()
    loaded = config.load(example, data_dir="/tmp/x")
    for key, (default, _v, _h) in config.SCHEMA.items():
        assert loaded.values[key] == default


def test_defaults_and_derived_paths(tmp_path: Path) -> None:
    cfg = config.load(None, data_dir=tmp_path)
    assert cfg.get("server", "port") == 8080
    assert cfg.database_url == f"sqlite:///{tmp_path / 'davdisk.db'}"
    assert cfg.blob_dir == tmp_path / "blobs"
    # Beside the data dir, never inside it (issue 12, item 11; it used to be <data-dir>/master.key)
    assert cfg.master_key_file == tmp_path.with_name(tmp_path.name + ".key")


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAVDISK_DATA_DIR", str(tmp_path / "env"))
    assert config.load().data_dir == tmp_path / "env"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server]\nport = 70000\n", "port"),
        ("[server]\nport = 'x'\n", "port"),
        ("[server]\nbogus = 1\n", "unknown setting [server] bogus"),
        ("[auth]\nbcrypt_cost = 3\n", "bcrypt_cost"),
        ("[server]\nshutdown_grace = -1\n", "shutdown_grace must be an integer >= 0"),
        ("[server]\nshutdown_grace = '30s'\n", "shutdown_grace"),
        ("[logging]\nlevel = 'loud'\n", "level"),
        ("[versions]\nretention = '30, 7'\n", '[versions] retention must be "auto", "D, auto"'),
        ("[versions]\nretention = 'forever'\n", "[versions] retention must be"),
        ("[versions]\nretention = 30\n", "retention must be a string"),
        ("[versions]\nhistory_share = 101\n", "history_share must be an integer percentage"),
        ("[versions]\nhistory_share = -1\n", "history_share must be"),
        ("[versions]\nhistory_share = 0.5\n", "history_share must be"),
        ("[trash]\nretention_days = -1\n", "retention_days must be an integer >= 0"),
        ("[trash]\nretention_days = '30d'\n", "retention_days must be"),
        ("[jobs]\nexpiry_interval = -5\n", "expiry_interval must be an integer >= 0"),
        ("server = 1\n", "must be a [section]"),
        ("[server\n", "davdisk.toml"),
    ],
)
def test_bad_settings_name_the_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "davdisk.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        config.load(f, data_dir=tmp_path)
    assert str(f) in e.value.message
    assert needle in e.value.message
    assert "\n" not in e.value.message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        config.load(tmp_path / "nope.toml", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("", ""),
        ("https://dav.example.com", "https://dav.example.com"),
        ("https://dav.example.com/", "https://dav.example.com"),
        ("http://10.0.0.5:8443", "http://10.0.0.5:8443"),
        ("https://example.com/davdisk/", "https://example.com/davdisk"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_public_url(tmp_path: Path, value: str, stored: str) -> None:
    f = tmp_path / "davdisk.toml"
    f.write_text(f'[server]\npublic_url = "{value}"\n')
    assert config.load(f, data_dir=tmp_path).get("server", "public_url") == stored


@pytest.mark.parametrize(
    "value",
    [
        "dav.example.com",
        "ftp://dav.example.com",
        "https://",
        "https:///path",
        "https://dav.example.com?x=1",
        "https://dav.example.com/#top",
        "https://dav.example.com/a b",
        "https://dav.example.com:99999",
        "https://dav.example.com:port",
        "https://user:secret@dav.example.com",
        " https://dav.example.com",
        "https://dav.example.com\\n",
    ],
)
def test_bad_public_url(tmp_path: Path, value: str) -> None:
    f = tmp_path / "davdisk.toml"
    f.write_text(f'[server]\npublic_url = "{value}"\n')
    with pytest.raises(ConfigError) as e:
        config.load(f, data_dir=tmp_path)
    assert "public_url" in e.value.message and str(f) in e.value.message
    print(e.value.message)


def test_versions_and_trash_settings(tmp_path: Path) -> None:
    cfg = config.load(None, data_dir=tmp_path)
    assert cfg.get("versions", "retention") == "auto"
    assert cfg.get("versions", "history_share") == 50
    assert cfg.get("trash", "retention_days") == 30
    assert cfg.get("jobs", "expiry_interval") == 1800
    f = tmp_path / "davdisk.toml"
    f.write_text(
        '[versions]\nretention = " 7 , 30 "\nhistory_share = 0\n'
        "[trash]\nretention_days = 0\n[jobs]\nexpiry_interval = 0\n"
    )
    cfg = config.load(f, data_dir=tmp_path)
    assert config.parse_rule(cfg.get("versions", "retention")) == config.Rule(
        thin=False, keep_days=7, max_days=30
    )
    assert cfg.get("versions", "history_share") == 0
    assert cfg.get("trash", "retention_days") == 0
    assert cfg.get("jobs", "expiry_interval") == 0

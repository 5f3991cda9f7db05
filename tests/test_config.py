"""Config loading, environment overrides, *_file secrets and the --config.check command."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cache import EndpointCache
from exporter.cli import main
from exporter.config import Config, ConfigError, load_config
from exporter.vendors.datto.settings import DattoSettings

CANARY = "CANARY-9f2c7e51-private-key"

GOOD = """
cache:
  ttl_seconds: 120
  endpoints:
    seats: 900
sources:
  - name: datto
    type: datto
    public_key: pub-123
    private_key: {secret}
"""


def write(tmp_path: Path, text: str, name: str = "config.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def datto(config: Config) -> DattoSettings:
    source = config.sources[0]
    assert isinstance(source, DattoSettings)
    return source


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_valid_config_has_defaults_and_keeps_the_secret_secret(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD.format(secret=CANARY)))
    source = datto(config)
    assert str(source.base_url) == "https://api.datto.com/"
    assert source.private_key is not None
    assert source.private_key.get_secret_value() == CANARY
    assert CANARY not in repr(config)
    assert CANARY not in str(config.model_dump())
    assert EndpointCache(config.cache).ttl("seats") == 900
    assert EndpointCache(config.cache).ttl("domains") == 120
    assert config.secrets() == [CANARY]


def test_private_key_file(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text(CANARY + "\n", encoding="utf-8")
    text = GOOD.replace("private_key: {secret}", f"private_key_file: {secret}")
    config = load_config(write(tmp_path, text))
    key = datto(config).private_key
    assert key is not None
    assert key.get_secret_value() == CANARY


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-file-secret", encoding="utf-8")
    monkeypatch.setenv("SAAS_BACKUP_CACHE__TTL_SECONDS", "42")
    monkeypatch.setenv("SAAS_BACKUP_SOURCES__DATTO__PUBLIC_KEY", "pub-from-env")
    monkeypatch.setenv("SAAS_BACKUP_SOURCES__DATTO__PRIVATE_KEY_FILE", str(secret))
    text = GOOD.replace("    private_key: {secret}\n", "")
    config = load_config(write(tmp_path, text))
    assert config.cache.ttl_seconds == 42
    source = datto(config)
    assert source.public_key == "pub-from-env"
    assert source.private_key is not None
    assert source.private_key.get_secret_value() == "from-file-secret"


def test_environment_override_for_an_unknown_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAAS_BACKUP_SOURCES__NOPE__PRIVATE_KEY", CANARY)
    problems = problems_of(write(tmp_path, GOOD.format(secret="x" * 10)))
    assert problems == [
        "SAAS_BACKUP_SOURCES__NOPE__PRIVATE_KEY: no source with that name in the config file"
    ]


BAD_CASES = {
    "not a url": (
        "sources:\n"
        "  - {name: a, type: datto, public_key: p, private_key: SECRET, base_url: nope}\n",
        ["sources[0].base_url: not a URL"],
    ),
    "second source bad url": (
        "sources:\n"
        "  - {name: a, type: datto, public_key: p, private_key: SECRET}\n"
        "  - {name: b, type: datto, public_key: p, private_key: SECRET, base_url: 'ftp:/x'}\n",
        ["sources[1].base_url: not an http(s) URL"],
    ),
    "unknown key and missing key": (
        "sources:\n  - {name: a, type: datto, private_key: SECRET, privat_key: SECRET}\n",
        ["sources[0].public_key: required", "sources[0].privat_key: unknown key"],
    ),
    "unsupported type": (
        "sources:\n  - {name: a, type: dropbox, public_key: p, private_key: SECRET}\n",
        ["sources[0].type: unknown type (one of: datto, backupify, cloudally)"],
    ),
    "no sources": ("cache: {ttl_seconds: 5}\n", ["sources: required"]),
    "negative ttl and unknown endpoint": (
        "cache: {ttl_seconds: -1, endpoints: {seatz: 5}}\n"
        "sources:\n  - {name: a, type: datto, public_key: p, private_key: SECRET}\n",
        [
            "cache.ttl_seconds: Input should be greater than 0",
            "cache.endpoints: unknown endpoint seatz (known: active_backup, applications,",
        ],
    ),
    "duplicate names": (
        "sources:\n"
        "  - {name: a, type: datto, public_key: p, private_key: SECRET}\n"
        "  - {name: a, type: datto, public_key: p, private_key: SECRET}\n",
        ["config: duplicate source name 'a'"],
    ),
    "both secret forms": (
        "sources:\n  - {name: a, type: datto, public_key: p, private_key: SECRET,"
        " private_key_file: /etc/hostname}\n",
        ["sources[0]: private_key and private_key_file are mutually exclusive"],
    ),
    "no secret": (
        "sources:\n  - {name: a, type: datto, public_key: p}\n",
        ["sources[0]: private_key (or private_key_file) is required"],
    ),
    "unreadable secret file": (
        "sources:\n  - {name: a, type: datto, public_key: p, private_key_file: /nonexistent/key}\n",
        # The key, not the path: a secret pasted under the _file key would be the path.
        ["sources[0].private_key_file: cannot read the file (No such file or directory)"],
    ),
    "credentials in the url": (
        "sources:\n  - {name: a, type: datto, public_key: p, private_key: SECRET,"
        " base_url: 'https://user:SECRET@api.datto.com'}\n",
        ["sources[0].base_url: must not contain credentials; use the source's key settings"],
    ),
    "backupify without a secret": (
        "sources:\n  - {name: b, type: backupify, client_id: c}\n",
        ["sources[0]: client_secret (or client_secret_file) is required"],
    ),
    "cloudally bad auth style": (
        "sources:\n  - {name: c, type: cloudally, client_id: c, client_secret: SECRET,"
        " auth_style: cookies}\n",
        ["sources[0].auth_style: Input should be 'body' or 'headers'"],
    ),
    "cloudally both password forms": (
        "sources:\n  - {name: c, type: cloudally, client_id: c, client_secret: SECRET,"
        " password: SECRET, password_file: /etc/hostname}\n",
        ["sources[0]: password and password_file are mutually exclusive"],
    ),
    "missing type": (
        "sources:\n  - {name: c, client_id: c, client_secret: SECRET}\n",
        ["sources[0].type: required (one of: datto, backupify, cloudally)"],
    ),
    "not a mapping": ("- SECRET\n", ["the top level must be a mapping of settings"]),
    "yaml syntax": (
        "sources:\n  - name: a\n    private_key: SECRET\n   bad: [\n",
        ["invalid YAML"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_configs_name_every_problem_and_never_echo_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, expected = BAD_CASES[case]
    path = write(tmp_path, text.replace("SECRET", CANARY))
    problems = problems_of(path)
    for wanted in expected:
        assert any(wanted in p for p in problems), (wanted, problems)
    assert CANARY not in "\n".join(problems)

    assert main(["--config.file", str(path), "--config.check"]) == 1
    out = capsys.readouterr()
    assert CANARY not in out.out + out.err
    for wanted in expected:
        assert wanted in out.err


def test_yaml_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - name: a\n    private_key: " + CANARY + "\n   bad: [\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:4:")
    assert CANARY not in problem


def test_missing_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.yml") == [
        f"{tmp_path / 'nope.yml'}: cannot read: No such file or directory"
    ]


def test_config_check_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.format(secret=CANARY))
    assert main(["--config.file", str(path), "--config.check"]) == 0
    out = capsys.readouterr().out
    assert "OK (1 sources: datto)" in out
    assert CANARY not in out


def test_config_check_via_a_subprocess(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write(tmp_path, BAD_CASES["not a url"][0].replace("SECRET", CANARY))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "sources[0].base_url: not a URL" in result.stderr
    assert CANARY not in result.stdout + result.stderr


def test_all_three_vendor_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text(CANARY)
    monkeypatch.setenv("SAAS_BACKUP_SOURCES__CLOUD_ALLY__PASSWORD_FILE", str(secret))
    text = f"""
sources:
  - {{name: datto, type: datto, public_key: p, private_key: {CANARY}}}
  - {{name: backupify, type: backupify, client_id: c, client_secret_file: {secret}}}
  - {{name: cloud-ally, type: cloudally, client_id: c, client_secret: {CANARY},
      auth_style: headers, email: ops@example.com}}
"""
    config = load_config(write(tmp_path, text))
    assert [s.vendor for s in config.sources] == ["datto", "backupify", "cloudally"]
    assert config.secrets() == [CANARY] * 4
    assert str(config.sources[1].base_url) == "https://api.backupify.com/"
    assert str(config.sources[2].base_url) == "https://api.cloudally.com/"
    assert CANARY not in repr(config)

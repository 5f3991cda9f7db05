"""A secret planted wherever config validation can fail appears in no error, output or log line,
while the error still names the key and the problem: YAML, `_file`, environment, alias, tag,
wrong type, a secret pasted as a key."""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.config import ConfigError, load_config
from exporter.config_errors import nameable

# Mixed case and digits, like a vendor's key; "hunter2" as a key too (see `nameable`).
CANARY = "CANARY-7Hq2-xK9p-secret"
NUMBER_CANARY = "918273645546372819"
SOURCE = "sources:\n  - {name: a, type: datto, public_key: p, %s}\n"
CLOUDALLY = "sources:\n  - {name: c, type: cloudally, client_id: c, client_secret: s, %s}\n"
HIDDEN_KEY = "unknown key (its name is not shown"


@dataclass(frozen=True)
class Case:
    yaml: str
    expected: str
    env: dict[str, str] = field(default_factory=dict)
    # name -> content, written beside the config; `{dir}` in the YAML is their folder.
    files: dict[str, bytes] = field(default_factory=dict)
    # Also in the same problem: the variable that set the value.
    origin: str = ""


CASES = {
    # Wrong types: a secret where text, a number, a list or a mapping belongs.
    "secret as a list": Case(
        SOURCE % f"private_key: [{CANARY}]", "sources[0].private_key: must be text"
    ),
    "secret as a mapping": Case(
        SOURCE % f"private_key: {{{CANARY}: x}}", "sources[0].private_key: must be text"
    ),
    "password as a mapping": Case(
        CLOUDALLY % f"password: {{{CANARY}: x}}", "sources[0].password: must be text"
    ),
    "secret as a number": Case(
        SOURCE % f"private_key: {NUMBER_CANARY}", "sources[0].private_key: must be text"
    ),
    "secret where a number belongs": Case(
        SOURCE % f"private_key: k, max_concurrency: {CANARY}",
        "sources[0].max_concurrency: Input should be a valid integer",
    ),
    "secret where a list belongs": Case(
        "sources:\n  - {name: b, type: backupify, client_id: c, client_secret: s,"
        f" backup_definition_ids: {CANARY}}}\n",
        "sources[0].backup_definition_ids: Input should be a valid list",
    ),
    "secret where a mapping belongs": Case(
        SOURCE % f"private_key: k, retry: {CANARY}",
        "sources[0].retry: must be a mapping of settings",
    ),
    "secret where a choice belongs": Case(
        CLOUDALLY % f"auth_style: {CANARY}",
        "sources[0].auth_style: Input should be 'body' or 'headers'",
    ),
    "secret as the type": Case(
        SOURCE.replace("type: datto", f"type: {CANARY}") % "private_key: k",
        "sources[0].type: unknown type",
    ),
    "secret as the name": Case(
        SOURCE.replace("name: a", f"name: '{CANARY} x'") % "private_key: k",
        "sources[0].name: must start with a letter",
    ),
    "secret in the url": Case(
        SOURCE % f"private_key: k, base_url: 'https://user:{CANARY}@api.example.com'",
        "sources[0].base_url: must not contain credentials",
    ),
    # A secret where a key belongs.
    "secret as a key of a source": Case(
        SOURCE % f"private_key: k, {CANARY}: x", f"sources[0].<key #5>: {HIDDEN_KEY}"
    ),
    "hunter2 as a key": Case(
        SOURCE % "private_key: k, hunter2: x", f"sources[0].<key #5>: {HIDDEN_KEY}"
    ),
    "secret pasted a line too far left": Case(
        "sources:\n  - name: a\n    type: datto\n    public_key: p\n    private_key:\n"
        f"    {CANARY}: x\n",
        f"sources[0].<key #5>: {HIDDEN_KEY}",
    ),
    "secret as a top-level key": Case(
        f"{CANARY}: 1\n" + SOURCE % "private_key: k", f"<key #1>: {HIDDEN_KEY}"
    ),
    "secret as a nested key": Case(
        SOURCE % f"private_key: k, retry: {{{CANARY}: 1}}",
        f"sources[0].retry.<key #1>: {HIDDEN_KEY}",
    ),
    "secret as a key merged in": Case(
        f"base: &base {{{CANARY}: 1}}\n"
        "sources:\n  - {<<: *base, name: a, type: datto, public_key: p, private_key: k}\n",
        f"sources[0].<key #1>: {HIDDEN_KEY}",
    ),
    "number as a key": Case(
        SOURCE % f"private_key: k, {NUMBER_CANARY}: x", "sources[0].<key #5>: a key must be text"
    ),
    "number as a top-level key": Case(
        f"{NUMBER_CANARY}: 1\n" + SOURCE % "private_key: k", "<key #1>: a key must be text"
    ),
    "secret as an endpoint": Case(
        f"cache: {{endpoints: {{{CANARY}: 5}}}}\n" + SOURCE % "private_key: k",
        "cache.endpoints: unknown endpoint #1 (not shown",
    ),
    "secret as an endpoint with a bad value": Case(
        f"cache: {{endpoints: {{{CANARY}: -5}}}}\n" + SOURCE % "private_key: k",
        "cache.endpoints.<key #1>: Input should be greater than 0",
    ),
    # `_file`: the path may be the secret itself; the file may hold anything.
    "secret as the file path": Case(
        SOURCE % f"private_key_file: {CANARY}",
        "sources[0].private_key_file: cannot read the file (No such file or directory)",
    ),
    "secret with a NUL as the file path": Case(
        SOURCE % f'private_key_file: "{CANARY}\\0"',
        "sources[0].private_key_file: not a usable file path",
    ),
    "file path as a list": Case(
        SOURCE % f"private_key_file: [{CANARY}]", "sources[0].private_key_file: must be a file path"
    ),
    "binary file": Case(
        SOURCE % "private_key_file: {dir}/key",
        "sources[0].private_key_file: the file is not UTF-8 text",
        files={"key": b"\xff\xfe" + CANARY.encode()},
    ),
    "huge file": Case(
        SOURCE % "private_key_file: {dir}/key",
        "sources[0].private_key_file: the file is larger than 64 KiB",
        files={"key": CANARY.encode() * 5000},
    ),
    "file of two lines": Case(
        SOURCE % "private_key_file: {dir}/key",
        "sources[0].private_key_file: holds a line break",
        files={"key": f"{CANARY}\n{CANARY}\n".encode()},
    ),
    "file with a NUL": Case(
        SOURCE % "private_key_file: {dir}/key",
        "sources[0].private_key_file: holds a line break, NUL",
        files={"key": CANARY.encode() + b"\0"},
    ),
    "empty file": Case(
        SOURCE % "private_key_file: {dir}/key",
        "sources[0].private_key_file: the file is empty",
        files={"key": b" \n"},
    ),
    "directory as the file": Case(
        SOURCE % "private_key_file: {dir}",
        "sources[0].private_key_file: cannot read the file (Is a directory)",
    ),
    "secret with a line break": Case(
        SOURCE % f'private_key: "{CANARY}\\n{CANARY}"', "sources[0].private_key: holds a line break"
    ),
    "secret with a NUL": Case(
        SOURCE % f'private_key: "{CANARY}\\0"', "sources[0].private_key: holds a line break, NUL"
    ),
    "secret with a lone surrogate": Case(
        SOURCE % f'private_key: "{CANARY}\\ud800"', "sources[0].private_key: holds a line break"
    ),
    # YAML's own errors quote what they found.
    "secret as an undefined alias": Case(
        SOURCE % f"private_key: *{CANARY}", "invalid YAML: an alias (*name) that no anchor"
    ),
    "secret as a tag": Case(SOURCE % f"private_key: !{CANARY} x", "invalid YAML: an unknown tag"),
    "secret under a python tag": Case(
        SOURCE % f"private_key: !!python/object:{CANARY} x", "invalid YAML: an unknown tag"
    ),
    "secret as a duplicate anchor": Case(
        f"a: &{CANARY} 1\nb: &{CANARY} 2\n", "invalid YAML: an anchor (&name) defined twice"
    ),
    "secret under an int tag": Case(
        SOURCE % f"private_key: !!int {CANARY}", "invalid YAML: a value YAML cannot read"
    ),
    "secret under a bool tag": Case(
        SOURCE % f"private_key: !!bool {CANARY}", "invalid YAML: a value YAML cannot read"
    ),
    "secret on a line with a syntax error": Case(
        f"sources:\n  - name: a\n    private_key: {CANARY}\n   bad: [\n", "invalid YAML"
    ),
    "secret with a bad escape": Case(
        SOURCE % f'private_key: "{CANARY}\\q"', "invalid YAML: found unknown escape character 'q'"
    ),
    "secret beside a control character": Case(
        SOURCE % f"private_key: {CANARY}\x07", ":2: invalid YAML: a control character"
    ),
    # The environment.
    "secret as a file path from the environment": Case(
        SOURCE % "public_key: p",
        "sources[0].private_key_file: cannot read the file (No such file or directory)"
        " (set by SAAS_BACKUP_SOURCES__A__PRIVATE_KEY_FILE)",
        env={"SAAS_BACKUP_SOURCES__A__PRIVATE_KEY_FILE": CANARY},
    ),
    "secret with a line break from the environment": Case(
        SOURCE % "public_key: p",
        "sources[0].private_key: holds a line break",
        env={"SAAS_BACKUP_SOURCES__A__PRIVATE_KEY": f"{CANARY}\n{CANARY}"},
    ),
    "secret where a number belongs, from the environment": Case(
        SOURCE % "private_key: k",
        "sources[0].max_concurrency: Input should be a valid integer",
        origin="(set by SAAS_BACKUP_SOURCES__A__MAX_CONCURRENCY)",
        env={"SAAS_BACKUP_SOURCES__A__MAX_CONCURRENCY": CANARY},
    ),
    "secret where a mapping belongs, from the environment": Case(
        SOURCE % "private_key: k",
        "sources[0].retry: must be a mapping of settings (set by SAAS_BACKUP_SOURCES__A__RETRY)",
        env={"SAAS_BACKUP_SOURCES__A__RETRY": CANARY},
    ),
    "both forms, one from the environment": Case(
        SOURCE % "private_key_file: /etc/hostname",
        "sources[0]: private_key and private_key_file are mutually exclusive",
        env={"SAAS_BACKUP_SOURCES__A__PRIVATE_KEY": CANARY},
    ),
    "secret for an unknown source": Case(
        SOURCE % "private_key: k",
        "SAAS_BACKUP_SOURCES__NOPE__PRIVATE_KEY: no source with that name",
        env={"SAAS_BACKUP_SOURCES__NOPE__PRIVATE_KEY": CANARY},
    ),
    "secret as all the sources": Case(
        SOURCE % "private_key: k",
        "SAAS_BACKUP_SOURCES: sources cannot be set as a whole from the environment",
        env={"SAAS_BACKUP_SOURCES": f'[{{"private_key": "{CANARY}"}}]'},
    ),
    "secret where a number belongs, in a section": Case(
        SOURCE % "private_key: k",
        "cache.ttl_seconds: Input should be a valid number",
        origin="(set by SAAS_BACKUP_CACHE__TTL_SECONDS)",
        env={"SAAS_BACKUP_CACHE__TTL_SECONDS": CANARY},
    ),
    "secret where JSON belongs": Case(
        SOURCE % "private_key: k",
        "SAAS_BACKUP_CACHE__ENDPOINTS: not valid JSON",
        env={"SAAS_BACKUP_CACHE__ENDPOINTS": CANARY},
    ),
    "secret as a section": Case(
        SOURCE % "private_key: k",
        "SAAS_BACKUP_CACHE: not valid JSON",
        env={"SAAS_BACKUP_CACHE": CANARY},
    ),
    "secret as a key in a section's JSON": Case(
        SOURCE % "private_key: k",
        f"cache.<a key>: {HIDDEN_KEY}",
        env={"SAAS_BACKUP_CACHE": f'{{"{CANARY}": 1}}'},
    ),
    "secret as an endpoint from the environment": Case(
        SOURCE % "private_key: k",
        "cache.endpoints: unknown endpoint #1 (not shown",
        env={"SAAS_BACKUP_CACHE__ENDPOINTS": f'{{"{CANARY}": 5}}'},
    ),
}


def leaks(text: str) -> bool:
    return any(s in text or s.lower() in text.lower() for s in (CANARY, NUMBER_CANARY))


def prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Case) -> Path:
    for name, content in case.files.items():
        (tmp_path / name).write_bytes(content)
    for var, value in case.env.items():
        monkeypatch.setenv(var, value)
    path = tmp_path / "config.yml"
    path.write_text(case.yaml.replace("{dir}", str(tmp_path)), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_planted_secret_is_in_no_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    case = CASES[name]
    path = prepare(tmp_path, monkeypatch, case)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert any(case.expected in p and case.origin in p for p in problems), problems
    # What an uncaught error would print, its chained causes included.
    printed = "".join(traceback.format_exception(info.value))
    assert not leaks(printed + repr(info.value) + "\n".join(problems))
    assert not leaks(caplog.text + "\n".join(r.getMessage() for r in caplog.records))

    assert main(["--config.file", str(path), "--config.check"]) == 1
    out = capsys.readouterr()
    assert case.expected in out.err
    # The CLI's log lines go to stderr too.
    assert not leaks(out.out + out.err)


def test_config_check_in_a_subprocess_names_the_keys_and_never_the_secret(tmp_path: Path) -> None:
    text = (
        f"cache: {{endpoints: {{{CANARY}: 5}}}}\n"
        "sources:\n"
        f"  - {{name: a, type: datto, public_key: p, private_key: [{CANARY}], {CANARY}: 1}}\n"
        "  - {name: b, type: backupify, client_id: c}\n"
    )
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    env = {
        "PATH": "/usr/bin:/bin",
        "SAAS_BACKUP_SOURCES__B__CLIENT_SECRET_FILE": CANARY,
        "SAAS_BACKUP_CACHE__TTL_SECONDS": CANARY,
    }
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 1
    for expected in (
        "cache.endpoints: unknown endpoint #1",
        "cache.ttl_seconds: Input should be a valid number",
        "sources[0].private_key: must be text",
        f"sources[0].<key #5>: {HIDDEN_KEY}",
        "sources[1].client_secret_file: cannot read the file (No such file or directory)"
        " (set by SAAS_BACKUP_SOURCES__B__CLIENT_SECRET_FILE)",
    ):
        assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not leaks(result.stdout + result.stderr)


def test_a_yaml_error_in_a_subprocess_quotes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(SOURCE % f"private_key: *{CANARY}", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 1
    assert f"{path}:2:" in result.stderr
    assert "alias" in result.stderr
    assert not leaks(result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("privat_key", True),  # a typo of a setting
        ("private-key", True),  # close to one
        ("tenants", True),  # lowercase words, like every setting
        ("hunter2", False),
        (CANARY, False),
        ("0123abcd4567ef89", False),  # hex, like a vendor's key
        ("Zm9vYmFyYmF6cXV4", False),  # base64
        ("x" * 40, False),  # too long to be a setting
        (12345, False),
    ],
)
def test_which_keys_are_named(key: object, shown: bool) -> None:
    assert nameable(key, {"private_key", "client_secret"}) is shown


def test_a_file_secret_is_stripped_of_its_byte_order_mark_and_line_end(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_bytes(b"\xef\xbb\xbf" + CANARY.encode() + b"\r\n")
    path = tmp_path / "config.yml"
    path.write_text(SOURCE % f"private_key_file: {secret}", encoding="utf-8")
    assert load_config(path).secrets() == [CANARY]

"""deploy/systemd/: the hardened unit passes `systemd-analyze verify` and `security`, agrees
with its config and the README's install commands, and its command line starts the exporter
with what systemd would hand it (no systemd runs here as PID 1 to start the unit itself)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.simulator.app import Simulator
from tests.conftest import ServerThread, free_port, wait_for
from tests.deploy_support import (
    ROOT,
    deploy_example,
    secret_files,
    section,
    simulated,
    tool,
    with_planted_secrets,
)

UNIT = ROOT / "deploy" / "systemd" / "saas-backup-exporter.service"
CONFIG = ROOT / "deploy" / "systemd" / "config.yml"
# Where the console script of the Python running these tests is: the unit's ExecStart, moved.
INSTALLED = Path(sys.executable).parent / "saas-backup-exporter"
SYSTEMD = "systemd (for systemd-analyze)"


def directives(text: str) -> Iterator[tuple[str, str, str]]:
    """(section, key, value) of a unit file, continuation lines joined, comments dropped."""
    current = ""
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        yield current, key.strip(), " ".join(value.split())


def service(key: str) -> list[str]:
    return [v for s, k, v in directives(UNIT.read_text()) if s == "Service" and k == key]


def exec_start() -> list[str]:
    (command,) = service("ExecStart")
    return shlex.split(command)


def moved(tmp_path: Path, text: str | None = None) -> Path:
    """The unit (or ``text``) with its ExecStart's program where these tests installed it;
    verify insists that it exists."""
    unit = tmp_path / UNIT.name
    unit.write_text((text or UNIT.read_text()).replace(exec_start()[0], str(INSTALLED), 1))
    return unit


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("systemd-analyze", SYSTEMD), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_unit_verifies(tmp_path: Path) -> None:
    reply = analyze("verify", str(moved(tmp_path)))
    assert (reply.returncode, reply.stdout, reply.stderr) == (0, "", "")


def test_a_misspelled_directive_fails_verification(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    reply = analyze("verify", str(moved(tmp_path, text)))
    assert "Unknown key 'ProtectSytem'" in reply.stderr


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "StateDirectory": "saas-backup-exporter",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service(key) == [value], key
    assert service("LoadCredential")
    reply = analyze("security", "--offline=yes", str(moved(tmp_path)))
    assert reply.returncode == 0, reply.stderr
    (level,) = re.findall(r"Overall exposure level for \S+: ([0-9.]+) OK", reply.stdout)
    # The README quotes it; a weaker unit fails here.
    (quoted,) = re.findall(r"`systemd-analyze security` rates\s+it ([0-9.]+)", section("Deploy"))
    assert float(level) <= float(quoted)


def test_the_config_reads_the_credentials_and_the_readme_installs_them() -> None:
    credentials = dict(c.split(":", 1) for c in service("LoadCredential"))
    paths = secret_files(yaml.safe_load(CONFIG.read_text()))
    assert paths
    # $CREDENTIALS_DIRECTORY: /run/credentials/<unit name>/<id>.
    assert {Path(p).parent for p in paths.values()} == {Path("/run/credentials") / UNIT.name}
    assert {Path(p).name for p in paths.values()} == set(credentials)
    # The README's commands put each file where the unit reads it.
    commands = deploy_example("systemd")
    venv = [c[-1] for c in commands if c[:3] == ["python3", "-m", "venv"]]
    assert venv == [str(Path(exec_start()[0]).parent.parent)]
    installed = {
        c[-1] + Path(c[-2]).name if c[-1].endswith("/") else c[-1]: c[-2]
        for c in commands
        if c[0] == "install"
    }
    (config_file,) = [a.partition("=")[2] for a in exec_start() if a.startswith("--config.file=")]
    assert installed[config_file] == str(CONFIG.relative_to(ROOT))
    assert installed[f"/etc/systemd/system/{UNIT.name}"] == str(UNIT.relative_to(ROOT))
    assert set(credentials.values()) <= set(installed)
    assert ["systemctl", "enable", "--now", UNIT.stem] in commands


@pytest.fixture
def vendor() -> Iterator[tuple[Simulator, ServerThread]]:
    sim = Simulator(customers=3, seats_per_customer=2, seed=5, token_ttl=3600)
    with ServerThread(sim.app()) as server:
        yield sim, server


def test_the_command_line_starts_as_systemd_would_start_it(
    tmp_path: Path, vendor: tuple[Simulator, ServerThread]
) -> None:
    """ExecStart= with Environment=, %S and the credentials directory as systemd sets them up;
    the program, the config's place and the port moved into the test's reach."""
    sim, server = vendor
    state_root, credentials = tmp_path / "state", tmp_path / "credentials"
    state_root.mkdir()
    credentials.mkdir()
    values, env = simulated(yaml.safe_load(CONFIG.read_text()), server.url, sim)
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(with_planted_secrets(CONFIG.read_text(), credentials, values)))
    for assignment in service("Environment"):
        key, _, value = assignment.partition("=")
        env[key] = value.replace("%S", str(state_root))
    (state_directory,) = service("StateDirectory")
    (state_root / state_directory).mkdir()
    port = free_port()
    moved_args = {"--config.file": str(config), "--web.listen-address": f"127.0.0.1:{port}"}
    command = [str(INSTALLED)]
    for arg in exec_start()[1:]:
        name = arg.partition("=")[0]
        command.append(f"{name}={moved_args[name]}" if name in moved_args else arg)
    process = subprocess.Popen(
        command,
        env={**os.environ, **env, "CREDENTIALS_DIRECTORY": str(credentials)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/-/ready", "Ready", timeout=60)
        metrics = httpx.get(url + "/metrics", timeout=30).text
        assert 'saas_backup_up{source="datto"} 1.0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    # systemd counts an exit by the SIGTERM it sent as a clean one; uvicorn re-raises it once
    # it has shut down.
    assert process.returncode in {0, -signal.SIGTERM}, errors
    assert "Application shutdown complete" in errors
    state_file = Path(env["SAAS_BACKUP_CACHE__STATE_FILE"])
    assert state_file.parent == state_root / state_directory
    assert state_file.stat().st_size > 0
    # The exporter logged no secret it read.
    assert values
    assert not [s for given in values.values() for s in given.values() if s in errors]

"""The README's Docker example against the Dockerfile: the ports, mounts and paths it uses are
the image's, and the image's command line with the README's config file starts the exporter.
(No Docker daemon runs in CI to build the image; hadolint checks it in tests/test_cli.py, and
tests/test_packaging.py installs the same `pip install .` into a fresh environment.)"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import httpx
import pytest
import yaml

from exporter.simulator.app import Simulator
from tests.conftest import ServerThread, free_port, wait_for
from tests.deploy_support import (
    ROOT,
    deploy_example,
    readme_config,
    secret_files,
    section,
    simulated,
    with_planted_secrets,
)


def final_stage() -> dict[str, list[str]]:
    """The last stage's instructions, by name, each with its arguments as written."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stage: dict[str, list[str]] = {}
    for line in text.splitlines():
        instruction, _, arguments = line.strip().partition(" ")
        if instruction == "FROM":
            stage = {}
        elif instruction and not instruction.startswith("#"):
            stage.setdefault(instruction, []).append(" ".join(arguments.split()))
    return stage


def image_env() -> dict[str, str]:
    env = {}
    for line in final_stage()["ENV"]:
        for assignment in line.split():
            key, _, value = assignment.partition("=")
            env[key] = value.strip('"')
    return env


def image_command() -> list[str]:
    (entrypoint,) = final_stage()["ENTRYPOINT"]
    (command,) = final_stage()["CMD"]
    return [*json.loads(entrypoint), *json.loads(command)]


def docker_run() -> tuple[dict[str, str], list[str], str]:
    """The README's `docker run`: its mounts (target -> source), published ports and image."""
    commands = deploy_example("Docker")
    (build,) = [c for c in commands if c[:2] == ["docker", "build"]]
    (run,) = [c for c in commands if c[:2] == ["docker", "run"]]
    mounts, ports = {}, []
    for flag, value in itertools.pairwise(run):
        if flag == "-v":
            source, target = value.split(":")[:2]
            mounts[target] = source
        elif flag == "-p":
            ports.append(value.rpartition(":")[2])
    assert build[build.index("-t") + 1] == run[-1]
    return mounts, ports, run[-1]


def test_the_readme_runs_the_image_as_the_dockerfile_builds_it() -> None:
    mounts, ports, _ = docker_run()
    stage = final_stage()
    assert ports == stage["EXPOSE"]
    command = image_command()
    config_file = command[command.index("--config.file") + 1]
    assert mounts[config_file].endswith("/config.yml")
    # The state volume: where the image keeps its state file, in a named volume.
    (volume,) = json.loads(stage["VOLUME"][0])
    state_file = PurePosixPath(image_env()["SAAS_BACKUP_CACHE__STATE_FILE"])
    assert state_file.parent == PurePosixPath(volume)
    assert "/" not in mounts[volume]
    # The README's config reads its secrets from the mounted secrets folder.
    folders = {
        PurePosixPath(p).parent for p in secret_files(yaml.safe_load(readme_config())).values()
    }
    (folder,) = folders
    assert str(folder) in mounts
    (user,) = stage["USER"]
    assert f"readable by uid {user.split(':')[0]}" in section("Docker", level=3).replace("\n", " ")


@pytest.fixture
def vendor() -> Iterator[tuple[Simulator, ServerThread]]:
    sim = Simulator(customers=3, seats_per_customer=2, seed=7, token_ttl=3600)
    with ServerThread(sim.app()) as server:
        yield sim, server


def test_the_image_command_starts_with_the_readme_config(
    tmp_path: Path, vendor: tuple[Simulator, ServerThread]
) -> None:
    """The image's ENTRYPOINT and CMD with its ENV, the README's config at the CMD's path and
    the secrets where the README mounts them, all moved into the test's folder; the vendors'
    URLs and keys are the simulator's, through environment overrides."""
    sim, server = vendor
    text = readme_config()
    values, env = simulated(yaml.safe_load(text), server.url, sim)
    secrets, state = tmp_path / "secrets", tmp_path / "state"
    secrets.mkdir()
    state.mkdir()
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(with_planted_secrets(text, secrets, values)))
    image = image_env()
    state_file = state / PurePosixPath(image["SAAS_BACKUP_CACHE__STATE_FILE"]).name
    # The image's own environment but its PATH, with the state volume moved.
    env |= {k: v for k, v in image.items() if k != "PATH"}
    env["SAAS_BACKUP_CACHE__STATE_FILE"] = str(state_file)
    program, *args = image_command()
    args[args.index("--config.file") + 1] = str(config)
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / program),
            *args,
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/-/ready", "Ready", timeout=60)
        metrics = httpx.get(url + "/metrics", timeout=30).text
        for source in yaml.safe_load(text)["sources"]:
            assert f'saas_backup_up{{source="{source["name"]}"}} 1.0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    # `docker stop` sends SIGTERM; uvicorn re-raises it once it has shut down.
    assert process.returncode in {0, -signal.SIGTERM}, errors
    assert state_file.stat().st_size > 0
    # The exporter logged no secret it read.
    assert values
    assert not [s for given in values.values() for s in given.values() if s in errors]

"""What the deploy tests share: the README's "Deploy" examples, tools from Debian or the machine
image, planted secrets for a config whose `*_file` paths point elsewhere."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import vendors
from exporter.config import ENV_PREFIX
from exporter.simulator.app import Simulator
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def tool(name: str, hint: str) -> str:
    """The tool's path. Missing: a skip on a laptop, a failure under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({hint})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def section(title: str, level: int = 2) -> str:
    """The README's section of that title, up to the next heading of its level or above (a
    `#` comment in a code block is no heading)."""
    lines = README.read_text(encoding="utf-8").splitlines(keepends=True)
    heading = "#" * level + " " + title + "\n"
    assert heading in lines, f"the README has no {heading.strip()!r}"
    body: list[str] = []
    fenced = False
    for line in lines[lines.index(heading) + 1 :]:
        fenced ^= line.startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", line):
            break
        body.append(line)
    return "".join(body)


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def deploy_example(title: str) -> list[list[str]]:
    """The commands of the one shell example in the "Deploy" section's subsection, each split
    as the shell would (continuation lines joined, `&&` separating commands)."""
    (block,) = code_blocks(section(title, level=3), "sh")
    commands: list[list[str]] = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while "&&" in words:
            at = words.index("&&")
            commands.append(words[:at])
            words = words[at + 1 :]
        if words:
            commands.append(words)
    return commands


def readme_config() -> str:
    """The README's example config file (`# config.yml`)."""
    (config,) = [
        b
        for b in code_blocks(section("Running it against your vendors"), "yaml")
        if b.startswith("# config.yml")
    ]
    return config


def secret_files(config: dict[str, Any]) -> dict[str, str]:
    """Each source's `<secret>_file` path in a loaded config, keyed `<source>.<key>`; every
    secret is given that way, never as a value."""
    found = {}
    for source in config["sources"]:
        for secret in vendors.get(source["type"]).settings.SECRETS:
            assert secret not in source, f"{source['name']}: {secret} given as a value"
            if f"{secret}_file" in source:
                found[f"{source['name']}.{secret}_file"] = source[f"{secret}_file"]
    return found


def with_planted_secrets(
    text: str, folder: Path, values: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """The config with each secret file moved into ``folder`` (same name), holding the value
    given for its source and secret in ``values``, else a canary."""
    config: dict[str, Any] = yaml.safe_load(text)
    for source in config["sources"]:
        for secret in vendors.get(source["type"]).settings.SECRETS:
            key = f"{secret}_file"
            if key in source:
                given = (values or {}).get(source["name"], {})
                planted = folder / Path(source[key]).name
                planted.write_text(given.get(secret, f"canary-{source['name']}-{secret}") + "\n")
                source[key] = str(planted)
    return config


def simulated(
    config: dict[str, Any], url: str, sim: Simulator
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """How to run a config against the simulator at ``url``: the secret values for
    ``with_planted_secrets`` and the environment overrides (base URLs, the other credentials),
    so that the config keeps its own keys and values but for the secret files' place."""
    values: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for source in config["sources"]:
        vendor = vendors.get(source["type"])
        prefix = f"{ENV_PREFIX}SOURCES__{source['name'].upper().replace('-', '_')}__"
        env[prefix + "BASE_URL"] = url
        for key, value in vendor.demo(sim.credentials).items():
            if key in vendor.settings.SECRETS:
                values.setdefault(source["name"], {})[key] = value
            else:
                env[prefix + key.upper()] = value
    return values, env

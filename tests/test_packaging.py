"""`python -m build` makes an sdist and a wheel with complete metadata; the wheel, installed
into a fresh virtualenv with its dependencies, runs `--version`, `--config.check` on the
example configs and the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest
import yaml

from exporter import __version__, vendors
from exporter.config import ENV_PREFIX
from tests.conftest import free_port, wait_for
from tests.deploy_support import ROOT, readme_config, secret_files

NAME = "saas-backup-exporter"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEPLOY = ROOT / "deploy"
EXAMPLES = {
    "README": readme_config,
    "kubernetes base": (DEPLOY / "kubernetes" / "base" / "config.yml").read_text,
    "kubernetes overlay": (DEPLOY / "kubernetes" / "overlays" / "example" / "config.yml").read_text,
    "systemd": (DEPLOY / "systemd" / "config.yml").read_text,
}


def run(
    *command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An sdist and the wheel built from it, as `python -m build` makes them."""
    out = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def venv(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its dependencies from the package index; its bin/.
    Installed by this interpreter's pip, without compiling (as the Dockerfile installs)."""
    root = tmp_path_factory.mktemp("venv")
    made = run(sys.executable, "-m", "venv", "--without-pip", root)
    assert made.returncode == 0, made.stderr
    installed = run(
        sys.executable, "-m", "pip", "--python", root / "bin" / "python", "install",
        "--no-compile", "--disable-pip-version-check", "--quiet", dist["wheel"],
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    return root / "bin"


def metadata(text: str) -> Message:
    return Parser().parsestr(text)


def test_the_wheel_has_complete_metadata(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        info = f"saas_backup_exporter-{__version__}.dist-info"
        meta = metadata(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert meta["Name"] == NAME
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Summary"]
    assert meta["Description-Content-Type"] == "text/markdown"
    # The README, as the sdist the wheel was built from holds it.
    with tarfile.open(dist["sdist"]) as sdist:
        readme = sdist.extractfile(f"saas_backup_exporter-{__version__}/README.md")
        assert readme is not None
        assert str(meta.get_payload()).strip() == readme.read().decode().strip()
    assert str(meta.get_payload()).startswith(f"# {NAME}\n")
    classifiers = meta.get_all("Classifier") or []
    assert {"Typing :: Typed", "Topic :: System :: Monitoring"} <= set(classifiers)
    assert not [c for c in classifiers if c.startswith("License ::")]  # the expression says it
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues"}
    # The same repository as the alerts' runbook links.
    runbooks = (ROOT / "alerts" / "thresholds.py").read_text()
    assert all(url.startswith(urls["Source"]) for url in urls.values())
    assert f'"{urls["Source"]}/blob/main/docs/runbooks.md"' in runbooks
    required = {r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r}
    assert len(required) == len(PYPROJECT["project"]["dependencies"])
    assert f"{NAME} = exporter.cli:main" in entry_points.splitlines()


def test_the_wheel_holds_the_package_and_nothing_else(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = {n for n in wheel.namelist() if not n.startswith("saas_backup_exporter-")}
    sources = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "exporter").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert names == sources
    assert "exporter/py.typed" in names
    assert "exporter/simulator/app.py" in names
    assert {n for n in names if n.endswith("/simulator.py")}


def test_the_sdist_has_the_same_metadata_and_the_sources(dist: dict[str, Path]) -> None:
    top = f"saas_backup_exporter-{__version__}"
    with tarfile.open(dist["sdist"]) as sdist:
        names = set(sdist.getnames())
        info = sdist.extractfile(f"{top}/PKG-INFO")
        assert info is not None
        meta = metadata(info.read().decode())
    assert meta["License-Expression"] == "Apache-2.0"
    assert len(meta.get_all("Project-URL") or []) == 4
    assert {f"{top}/pyproject.toml", f"{top}/README.md", f"{top}/exporter/py.typed"} <= names


def test_the_installed_wheel_runs_from_its_own_environment(venv: Path, tmp_path: Path) -> None:
    version = run(venv / NAME, "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"{NAME} {__version__}"
    module = run(venv / "python", "-c", "import exporter; print(exporter.__file__)", cwd=tmp_path)
    assert Path(module.stdout.strip()).is_relative_to(venv.parent)
    assert run(venv / "python", "-m", "exporter", "--version", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_installed_wheel_checks_the_example_configs(
    venv: Path, tmp_path: Path, example: str
) -> None:
    """Each example as it is written; its secret files, which live elsewhere in a deployment,
    are named through the environment overrides."""
    text = EXAMPLES[example]()
    config = tmp_path / "config.yml"
    config.write_text(text)
    env = dict(os.environ)
    for where, path in secret_files(yaml.safe_load(text)).items():
        source, key = where.split(".")
        planted = tmp_path / Path(path).name
        planted.write_text(f"canary-{where}\n")
        env[f"{ENV_PREFIX}SOURCES__{source.upper()}__{key.upper()}"] = str(planted)
    checked = run(venv / NAME, "--config.file", config, "--config.check", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    assert f"{config}: OK" in checked.stdout
    assert "canary" not in checked.stdout + checked.stderr


@pytest.fixture
def demo(venv: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [str(venv / NAME), "demo", "--web.listen-address", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_the_installed_wheel_runs_the_demo(demo: tuple[str, subprocess.Popen[str]]) -> None:
    url, process = demo
    metrics = wait_for(url + "/metrics", "saas_backup_up{", timeout=60).text
    assert all(f'saas_backup_up{{source="{s}"}}' in metrics for s in vendors.names())
    # Ctrl-C, as a person stops it.
    process.send_signal(signal.SIGINT)
    out, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert url.replace("127.0.0.1", "localhost") + "/metrics" in out

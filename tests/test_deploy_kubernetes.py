"""deploy/kubernetes/: the kustomize base and the example overlay render with `kubectl
kustomize`, every object loads into the official Kubernetes client's models (the operator's
objects into models of their CRDs), the generated objects match what they are made from, and
what the objects say matches the exporter they run."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deploy.kubernetes import generate
from exporter import __version__
from exporter.cli import DEFAULT_LISTEN
from exporter.config import build_config
from exporter.simulator.app import Simulator
from tests.conftest import ServerThread, datto_source, exporter_for, require_tool
from tests.deploy_support import ROOT, deploy_example, secret_files, tool, with_planted_secrets
from tests.k8s_models import CRDS, client_model_differences

KUSTOMIZATIONS = ("deploy/kubernetes/base", "deploy/kubernetes/overlays/example")
BASE, OVERLAY = KUSTOMIZATIONS
NAME = "saas-backup-exporter"


def kubectl() -> str:
    path = tool("kubectl", "kubectl 1.27 or newer: its kustomize v5 renders the overlay")
    reply = subprocess.run(
        [path, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # kubectl 1.20 (Debian's kubernetes-client) names none: its kustomize v2 cannot render.
    kustomize = json.loads(reply.stdout).get("kustomizeVersion", "v2")
    assert int(kustomize.lstrip("v").split(".")[0]) >= 5, f"kustomize {kustomize}: needs v5"
    return path


@functools.cache
def rendered(folder: str) -> tuple[dict[str, Any], ...]:
    reply = subprocess.run(
        [kubectl(), "kustomize", folder],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reply.returncode == 0, reply.stderr
    # Not even a deprecation warning.
    assert reply.stderr == ""
    return tuple(yaml.safe_load_all(reply.stdout))


def one(objects: tuple[dict[str, Any], ...], kind: str, name: str = NAME) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
    return found


def container(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (exporter,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = exporter
    return found


def mounts(objects: tuple[dict[str, Any], ...]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each mounted volume by name: (mount path, volume)."""
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {
        m["name"]: (m["mountPath"], volumes[m["name"]]) for m in container(objects)["volumeMounts"]
    }


@pytest.mark.parametrize("folder", KUSTOMIZATIONS)
def test_every_object_loads_into_its_model(folder: str) -> None:
    objects = rendered(folder)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["ServiceAccount", "PersistentVolumeClaim", "Deployment", "Service", "ServiceMonitor"]
        + ["PrometheusRule", "ConfigMap"]
        + ["ConfigMap"] * len(list((ROOT / "dashboards").glob("*.json")))
    )
    for obj in objects:
        if obj["kind"] in CRDS:
            CRDS[obj["kind"]].model_validate(obj)
        # Whatever the models do not know is lost on the way back: a misspelled field.
        assert client_model_differences(obj) == [], obj["kind"]


def test_a_misspelled_field_or_a_wrong_type_is_caught() -> None:
    deployment = json.loads(json.dumps(one(rendered(BASE), "Deployment")))
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    pod["securityContex"] = {}
    assert client_model_differences(deployment) == [
        "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem",
        "spec.template.spec.securityContex",
    ]
    deployment["spec"]["replicas"] = "1"
    with pytest.raises(ValueError, match="replicas"):
        client_model_differences(deployment)
    monitor = json.loads(json.dumps(one(rendered(BASE), "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["scrapeTimout"] = "30s"
    with pytest.raises(ValueError, match="scrapeTimout"):
        CRDS["ServiceMonitor"].model_validate(monitor)


def test_the_deployment_is_hardened() -> None:
    deployment = one(rendered(BASE), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    exporter = container(rendered(BASE))
    assert exporter["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert exporter["image"] == f"{NAME}:{__version__}"
    requests, limits = exporter["resources"]["requests"], exporter["resources"]["limits"]
    assert set(requests) == {"cpu", "memory"}
    assert set(limits) == {"memory"}
    assert exporter["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert exporter["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}
    # The read-only root leaves no writable place but these volumes.
    assert {
        path for path, _ in mounts(rendered(BASE)).values() if not path.startswith("/etc/")
    } == {
        "/var/lib/saas-backup-exporter",
        "/tmp",
    }


def test_the_state_file_is_on_a_volume() -> None:
    objects = rendered(BASE)
    env = {e["name"]: e["value"] for e in container(objects)["env"]}
    state_file = Path(env["SAAS_BACKUP_CACHE__STATE_FILE"])
    path, volume = mounts(objects)["state"]
    assert state_file.parent == Path(path)
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert one(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The same place as the image's own volume.
    assert f"SAAS_BACKUP_CACHE__STATE_FILE={state_file}" in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("folder", KUSTOMIZATIONS)
def test_secrets_are_files_of_an_existing_secret(folder: str, tmp_path: Path) -> None:
    objects = rendered(folder)
    assert not [o for o in objects if o["kind"] == "Secret"]
    secrets_path, volume = mounts(objects)["secrets"]
    assert volume["secret"] == {"secretName": NAME, "defaultMode": 0o440}
    (args,) = container(objects)["args"]
    config_file = Path(args.removeprefix("--config.file="))
    config_path, config_volume = mounts(objects)["config"]
    assert config_file.parent == Path(config_path)
    config_map = one(objects, "ConfigMap", config_volume["configMap"]["name"])
    text = config_map["data"][config_file.name]
    paths = secret_files(yaml.safe_load(text))
    assert paths
    assert all(Path(p).parent == Path(secrets_path) for p in paths.values()), paths
    # Valid, once those files exist.
    assert build_config(with_planted_secrets(text, tmp_path)).sources
    if folder == OVERLAY:
        assert text == (ROOT / OVERLAY / "config.yml").read_text()


@pytest.fixture(scope="module")
def exporter() -> Iterator[ServerThread]:
    sim = Simulator(customers=2, seats_per_customer=2, seed=3, token_ttl=3600)
    with (
        ServerThread(sim.app()) as vendor,
        ServerThread(exporter_for(datto_source(vendor.url))) as served,
    ):
        yield served


def test_the_monitor_scrapes_what_the_service_and_the_exporter_serve(
    exporter: ServerThread,
) -> None:
    objects = rendered(BASE)
    service, monitor = one(objects, "Service"), one(objects, "ServiceMonitor")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    (container_port,) = [p for p in container(objects)["ports"] if p["name"] == port["targetPort"]]
    assert container_port["containerPort"] == int(DEFAULT_LISTEN.rpartition(":")[2])
    # The alerts select the job by name; Prometheus needs the timeout below the interval.
    thresholds = (ROOT / "alerts" / "thresholds.py").read_text()
    (relabel,) = endpoint["relabelings"]
    assert relabel["targetLabel"] == "job"
    assert f'JOB: Final = "{relabel["replacement"]}"' in thresholds
    assert int(endpoint["scrapeTimeout"].removesuffix("s")) < int(
        endpoint["interval"].removesuffix("s")
    )
    # The paths the monitor and the probes use are the exporter's.
    metrics = httpx.get(exporter.url + endpoint["path"], timeout=30)
    assert metrics.status_code == 200
    assert "saas_backup_up" in metrics.text
    probes = container(objects)
    assert httpx.get(exporter.url + probes["livenessProbe"]["httpGet"]["path"]).status_code == 200
    ready = httpx.get(exporter.url + probes["readinessProbe"]["httpGet"]["path"])
    assert ready.status_code in {200, 503}
    assert httpx.get(exporter.url + "/-/nothing").status_code == 404


def test_the_rule_passes_promtool_and_holds_the_rules_file(tmp_path: Path) -> None:
    rule = one(rendered(BASE), "PrometheusRule")
    rules_file = yaml.safe_load((ROOT / generate.RULES).read_text())
    assert rule["spec"] == rules_file
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    reply = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reply.returncode == 0, reply.stdout + reply.stderr
    assert "SUCCESS" in reply.stdout


def test_the_dashboards_are_config_maps_for_the_sidecar() -> None:
    objects = rendered(BASE)
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        config_map = one(objects, "ConfigMap", f"{NAME}-dashboard-{path.stem}")
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())
        # `kubectl apply` keeps a copy of the object in an annotation of at most 256 KiB.
        assert len(json.dumps(config_map)) < 200 * 1024


@pytest.mark.parametrize("name", ["prometheusrule.yaml", "dashboards.yaml"])
def test_committed_objects_are_what_the_generator_writes(name: str) -> None:
    committed = (ROOT / BASE / name).read_text()
    assert committed == generate.render()[name], f"{BASE}/{name} is out of date: `make deploy`"


def test_generator_runs_as_a_script(tmp_path: Path) -> None:
    script = ROOT / "deploy" / "kubernetes" / "generate.py"
    subprocess.run([sys.executable, script, tmp_path], check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(generate.render())


def test_the_overlay_changes_only_what_it_says() -> None:
    base, overlay = rendered(BASE), rendered(OVERLAY)
    assert all(o["metadata"]["namespace"] == "monitoring" for o in overlay)
    assert container(overlay)["image"] == f"registry.example.com/{NAME}:{__version__}"
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert one(overlay, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The config's name carries its hash, so a new config rolls the pods.
    assert (
        one(base, "ConfigMap", f"{NAME}-config")["metadata"]["name"]
        != one(overlay, "ConfigMap", f"{NAME}-config")["metadata"]["name"]
    )


def test_the_readme_example_renders(tmp_path: Path) -> None:
    """The README's commands, run offline: `create` as a client-side dry run, `apply -k` as
    `kustomize`. Together they make the namespace, the Secret and the objects that read it."""
    made: list[dict[str, Any]] = []
    (tmp_path / "datto_private_key").write_text("canary-secret\n")
    for command in deploy_example("Kubernetes"):
        assert command[0] == "kubectl", command
        if "apply" in command:
            folder = command[command.index("-k") + 1]
            assert (ROOT / folder).is_dir(), folder
            made += rendered(folder)
            continue
        assert "create" in command, command
        reply = subprocess.run(
            [kubectl(), *command[1:], "--dry-run=client", "-o", "yaml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        made.append(yaml.safe_load(reply.stdout))
    namespace = one(tuple(made), "Namespace", "")["metadata"]["name"]
    secret = one(tuple(made), "Secret")
    assert secret["metadata"]["namespace"] == namespace
    assert one(tuple(made), "Deployment")["metadata"]["namespace"] == namespace
    config = one(tuple(made), "ConfigMap", f"{NAME}-config")["data"]["config.yml"]
    needed = {Path(p).name for p in secret_files(yaml.safe_load(config)).values()}
    assert needed <= set(secret["data"])

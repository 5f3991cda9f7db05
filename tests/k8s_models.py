"""Schema checks for Kubernetes objects without a cluster.

Built-in kinds load into the official Kubernetes Python client's models; whatever a model does
not know (a misspelled or misplaced field) or reads differently (a number given as a string)
is lost on the way back, so the round trip names it. The Prometheus Operator's kinds are not in
that client: the strict models below follow its CRDs (monitoring.coreos.com/v1 ServiceMonitor
and PrometheusRule, the fields of theirs that matter here), and reject any other field.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from kubernetes.client import ApiClient
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

JSON = "application/json"
# The operator's duration pattern.
Duration = Annotated[
    str,
    StringConstraints(
        pattern=r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
    ),
]


def model_name(api_version: str, kind: str) -> str:
    """The client's class for a kind: apps/v1 Deployment -> V1Deployment."""
    version = api_version.rpartition("/")[2]
    return version[:1].upper() + version[1:] + kind


def differences(given: object, back: object, path: str = "") -> list[str]:
    if isinstance(given, dict) and isinstance(back, dict):
        found = []
        for key in sorted(set(given) | set(back)):
            where = f"{path}.{key}" if path else str(key)
            found += differences(given.get(key), back.get(key), where)
        return found
    if isinstance(given, list) and isinstance(back, list) and len(given) == len(back):
        return [
            d
            for i, (a, b) in enumerate(zip(given, back, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    same = given == back and type(given) is type(back)
    return [] if same else [path]


def serialized(client: ApiClient, model: object) -> object:
    return client.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]


def client_model_differences(obj: dict[str, Any]) -> list[str]:
    """The fields that do not survive a load into the client's model and back (for the
    operator's kinds, only their metadata is the client's)."""
    client = ApiClient()
    if obj["kind"] in CRDS:
        meta = client.deserialize(json.dumps(obj["metadata"]), "V1ObjectMeta", JSON)
        back = serialized(client, meta)
        return [f"metadata.{d}" for d in differences(obj["metadata"], back)]
    model = client.deserialize(json.dumps(obj), model_name(obj["apiVersion"], obj["kind"]), JSON)
    return differences(obj, serialized(client, model))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RelabelConfig(Strict):
    sourceLabels: list[str] | None = None
    separator: str | None = None
    targetLabel: str | None = None
    regex: str | None = None
    modulus: int | None = None
    replacement: str | None = None
    action: Literal[
        "replace",
        "keep",
        "drop",
        "hashmod",
        "labelmap",
        "labeldrop",
        "labelkeep",
        "lowercase",
        "uppercase",
        "keepequal",
        "dropequal",
    ] = "replace"


class Endpoint(Strict):
    port: str | None = None
    targetPort: int | str | None = None
    path: str | None = None
    scheme: Literal["http", "https"] | None = None
    params: dict[str, list[str]] | None = None
    interval: Duration | None = None
    scrapeTimeout: Duration | None = None
    honorLabels: bool | None = None
    honorTimestamps: bool | None = None
    relabelings: list[RelabelConfig] = []
    metricRelabelings: list[RelabelConfig] = []


class LabelSelector(Strict):
    matchLabels: dict[str, str] = {}
    matchExpressions: list[dict[str, Any]] = []


class NamespaceSelector(Strict):
    any: bool | None = None
    matchNames: list[str] = []


class ServiceMonitorSpec(Strict):
    endpoints: list[Endpoint]
    selector: LabelSelector
    namespaceSelector: NamespaceSelector | None = None
    jobLabel: str | None = None
    targetLabels: list[str] = []
    podTargetLabels: list[str] = []
    sampleLimit: int | None = None


class Rule(Strict):
    record: str | None = None
    alert: str | None = None
    expr: int | str
    for_: Duration | None = Field(default=None, alias="for")
    keep_firing_for: Duration | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}

    @model_validator(mode="after")
    def _record_or_alert(self) -> Rule:
        if (self.record is None) == (self.alert is None):
            raise ValueError("a rule has `record` or `alert`, not both")
        if self.record is not None and (self.annotations or self.for_):
            raise ValueError(f"{self.record}: a recording rule with alerting fields")
        if self.record is not None and not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", self.record):
            raise ValueError(f"{self.record}: not a metric name")
        return self


class RuleGroup(Strict):
    name: Annotated[str, StringConstraints(min_length=1)]
    interval: Duration | None = None
    limit: int | None = None
    query_offset: Duration | None = None
    labels: dict[str, str] = {}
    rules: list[Rule]


class PrometheusRuleSpec(Strict):
    groups: list[RuleGroup]


class ServiceMonitor(Strict):
    apiVersion: Literal["monitoring.coreos.com/v1"]
    kind: Literal["ServiceMonitor"]
    metadata: dict[str, Any]
    spec: ServiceMonitorSpec


class PrometheusRule(Strict):
    apiVersion: Literal["monitoring.coreos.com/v1"]
    kind: Literal["PrometheusRule"]
    metadata: dict[str, Any]
    spec: PrometheusRuleSpec


CRDS: dict[str, type[Strict]] = {"ServiceMonitor": ServiceMonitor, "PrometheusRule": PrometheusRule}

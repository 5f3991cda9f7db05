"""Rules as data: what a Prometheus rule group holds, plus the comments the rules file shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from alerts.thresholds import RUNBOOK_URL

Severity = Literal["critical", "warning", "info"]


@dataclass(frozen=True)
class Record:
    name: str
    expr: str
    comment: str = ""  # shown above the rule
    labels: tuple[tuple[str, str], ...] = ()

    def as_prometheus(self) -> dict[str, Any]:
        labels = {"labels": dict(self.labels)} if self.labels else {}
        return {"record": self.name, "expr": self.expr, **labels}


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str
    for_comment: str = ""  # shown above `for:`
    # How long it keeps firing once its expression is empty; "" for never.
    keep_firing_for: str = ""

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_URL}#{self.name.lower()}"

    def as_prometheus(self) -> dict[str, Any]:
        keep = {"keep_firing_for": self.keep_firing_for} if self.keep_firing_for else {}
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            **keep,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": self.runbook_url,
            },
        }


Rule = Record | Alert


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Rule, ...]
    comment: str = ""  # shown above the group

    def as_prometheus(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [rule.as_prometheus() for rule in self.rules]}

"""Writes the dashboards' JSON beside this file: `make dashboards`, or
`python -m dashboards.generate [DIR]` (`python dashboards/generate.py [DIR]` works too).

The dashboards are built with the pinned grafana-foundation-sdk, one module each (fleet,
customer, health) from the building blocks in widgets and queries. Their thresholds are the
alert rules' own, read from alerts/thresholds.py: by default a licensed seat is stale after
24 h and critical after 72 h; a backup running for 12 h is too long.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

if not __package__:  # `python dashboards/generate.py`: the repository is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards import customer, fleet, health

HERE: Final = Path(__file__).parent

DASHBOARDS: Final[dict[str, Callable[[], dict[str, Any]]]] = {
    "fleet-overview.json": fleet.fleet_overview,
    "customer-detail.json": customer.customer_detail,
    "exporter-health.json": health.exporter_health,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    target = Path(argv[0]) if argv else HERE
    for name in DASHBOARDS:
        (target / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

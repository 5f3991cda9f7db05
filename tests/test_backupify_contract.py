"""Backupify v1 against its swagger: the simulator's live shape answers the swagger's schemas
(tests/fixtures/backupify-swagger-definitions.yaml, copied from the vendor's published
document), records built from those schemas parse, Backupify's words map per vendor, and a bad
record is counted and skipped, never fatal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.http import ApiStats
from exporter.parsing import Problems, parse_records
from exporter.vendors.backupify.parse import (
    ExportRecord,
    InstanceRecord,
    backup_interval,
    backup_status,
    parse_active,
    parse_exports,
)
from exporter.vendors.backupify.simulator import BackupifySim
from tests.test_backupify import simulated

SWAGGER = yaml.safe_load(
    (Path(__file__).parent / "fixtures" / "backupify-swagger-definitions.yaml").read_text()
)
SCHEMAS: dict[str, Any] = SWAGGER["definitions"]
TYPES: dict[str, type | tuple[type, ...]] = {
    "integer": int,
    "string": str,
    "boolean": bool,
    "array": list,
}


def violations(schema_name: str, body: Any) -> list[str]:
    """Where ``body`` departs from the swagger's schema (required fields, types, enums, times).

    Swagger 2.0 cannot say "nullable": a date-time may be null (the API's notes say ``ended_at``
    is null while running), and so may an optional field."""
    schema = SCHEMAS[schema_name]
    if not isinstance(body, dict):
        return [f"{schema_name}: not an object"]
    found = [f"{schema_name}.{k}: missing" for k in schema.get("required", []) if k not in body]
    for key, item in body.items():
        where = f"{schema_name}.{key}"
        prop = schema["properties"].get(key)
        if prop is None:
            found.append(f"{where}: not in the swagger")
            continue
        if item is None:
            if prop.get("format") != "date-time" and key in schema.get("required", []):
                found.append(f"{where}: null")
            continue
        expected = TYPES.get(prop.get("type", ""))
        if expected is not None and (
            not isinstance(item, expected) or (expected is int and isinstance(item, bool))
        ):
            found.append(f"{where}: {type(item).__name__}, not {prop['type']}")
        if "enum" in prop and item not in prop["enum"]:
            found.append(f"{where}: {item!r} not in {prop['enum']}")
        if prop.get("format") == "date-time":
            try:
                if datetime.fromisoformat(item).tzinfo is None:
                    found.append(f"{where}: no offset")
            except ValueError:
                found.append(f"{where}: not ISO 8601")
    return found


def all_pages(client: httpx.Client, path: str, **params: str) -> list[Any]:
    items: list[Any] = []
    reply = client.get(path, params=params)
    while True:
        assert reply.status_code == 200, (path, reply.status_code)
        items.extend(reply.json())
        if "next" not in reply.links:
            return items
        reply = client.get(reply.links["next"]["url"])


def test_the_live_shape_answers_the_swaggers_schemas() -> None:
    with simulated("live") as (sim, url):
        part = sim.part(BackupifySim)
        # Healed: one backup status is planted on purpose outside the swagger ("verifying").
        # Then the incident's stuck backup, for an instance "in progress".
        part.heal()
        part.incident()
        token = httpx.post(
            url + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "scope": "write",
            },
        ).json()
        found = violations("token", token)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token['access_token']}"}
        ) as client:
            customers = all_pages(client, "/v1/customers")
            found += [v for c in customers for v in violations("customer", c)]
            instances = [
                i
                for c in customers
                for i in all_pages(client, f"/v1/customers/{c['id']}/backup_instances")
            ]
            found += [v for i in instances for v in violations("backup_instance", i)]
            definitions = all_pages(client, "/v1/backup_definitions")
            found += [v for d in definitions for v in violations("backup_definition", d)]
            for definition in {i["backup_definition_id"] for i in instances}:
                answer = client.get(f"/v1/backup_definitions/{definition}").json()
                found += violations("backup_definition", answer)
            for inst in instances:
                base = f"/v1/backup_instances/{inst['id']}"
                backups = all_pages(client, f"{base}/backups")
                found += [v for b in backups for v in violations("backup", b)]
                active = client.get(f"{base}/backups/active")
                if active.status_code == 200:
                    found += violations("backup", active.json())
                exports = all_pages(client, f"{base}/exports")
                found += [v for e in exports for v in violations("export", e)]
            found += violations("vendor_user", client.get("/v1/vendors/me").json())
    assert len(instances) == len(part.fleet.instances)
    assert {i["backup_frequency"] for i in instances} == {"off", "daily", "weekly"}
    assert "in progress" in {i["last_backup_state"] for i in instances}
    assert found == []


def test_the_checker_sees_a_departure() -> None:
    assert violations("backup", {"id": 1, "status": "done", "started_at": "2024-01-01"}) == [
        "backup.backup_instance_id: missing",
        "backup.ended_at: missing",
        "backup.status: 'done' not in "
        "['queued', 'in_progress', 'successful', 'failed', 'canceled']",
        "backup.started_at: no offset",
    ]


# Built field by field from the swagger's schemas, with the times the live API writes.
SWAGGER_INSTANCE = {
    "id": 7001,
    "backup_definition_id": 1,
    "customer_id": 3001,
    "backup_frequency": "weekly",
    "last_backup_state": "in progress",
    "last_successful_backup": "2024-03-09T22:15:07.250-04:00",
    "next_scheduled_backup": "2024-03-16T22:00:00+02:00",
}
SWAGGER_EXPORT = {
    "id": 50190,
    "backup_instance_id": 7001,
    "started_at": "2024-03-10T08:00:00.125+02:00",
    "ended_at": "2024-03-10T08:24:00+02:00",
    "status": "failed",
    "records_processed": 1200,
    "records_failed": 37,
    "failures": ["37 records could not be read"],
    "export_formats": "json,blobs",
    "content_types": "",
    "exported_data_url": "https://exports.example/download/50190?access_token=SECRET-TOKEN",
    "exported_data_url_expiration": "2024-03-17T08:24:00+02:00",
}


def test_swagger_records_parse() -> None:
    assert violations("backup_instance", SWAGGER_INSTANCE) == []
    assert violations("export", SWAGGER_EXPORT) == []
    problems = Problems()
    (inst,) = parse_records([SWAGGER_INSTANCE], InstanceRecord, problems, "instances")
    assert inst.last_success == datetime(2024, 3, 10, 2, 15, 7, 250_000, UTC).timestamp()
    assert (inst.customer_id, inst.definition_id) == ("3001", "1")
    assert backup_interval(inst.backup_frequency) == 7 * 86400
    assert backup_status(inst.last_backup_state) == "running"
    # The exports list's documented 200 body is one export object.
    (export,) = parse_exports(SWAGGER_EXPORT, problems)
    assert export.started_at == datetime(2024, 3, 10, 6, 0, 0, 125_000, UTC).timestamp()
    assert (export.records_processed, export.records_failed) == (1200, 37)
    assert backup_status(export.status) == "failed"
    assert [e.id for e in parse_exports([SWAGGER_EXPORT, SWAGGER_EXPORT], problems)] == [
        "50190",
        "50190",
    ]
    assert problems.count == 0


def test_an_export_record_cannot_hold_the_download_link() -> None:
    assert not [f for f in ExportRecord.model_fields if "url" in f]
    (export,) = parse_exports(SWAGGER_EXPORT, Problems())
    assert "SECRET-TOKEN" not in repr(export)
    assert "SECRET-TOKEN" not in repr(export.model_dump())


def test_a_bad_record_is_counted_and_skipped_not_fatal() -> None:
    stats = ApiStats()
    problems = Problems(stats)
    bad_time = {**SWAGGER_INSTANCE, "id": 7002, "last_successful_backup": "last Tuesday"}
    records = parse_records(
        [SWAGGER_INSTANCE, {"id": {"nested": 1}}, "not an object", bad_time],
        InstanceRecord,
        problems,
        "instances",
        lambda r: bool(r.id),
    )
    # The unparseable time drops that field, not its record; the others drop their record.
    assert [(r.id, r.last_success is not None) for r in records] == [
        ("7001", True),
        ("7002", False),
    ]
    assert problems.count == stats.parse_errors >= 3
    bad_count = {**SWAGGER_EXPORT, "records_failed": "many"}
    (export,) = parse_exports([bad_count], problems)
    assert (export.records_processed, export.records_failed) == (1200, None)
    assert parse_active(None, problems) is None, "204: nothing runs"


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("queued", "pending"),
        ("in_progress", "running"),
        ("in progress", "running"),
        ("successful", "success"),
        ("failed", "failed"),
        ("canceled", "cancelled"),
        # The spec shape's words, still read.
        ("running", "running"),
        ("completed", "success"),
        ("completed_with_errors", "partial"),
        # Words other vendors use are not Backupify's: unknown.
        ("verifying", "unknown"),
        ("ACTIVE", "unknown"),
        ("cancelled", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (3, "unknown"),
    ],
)
def test_backupify_words_map_per_vendor(word: object, status: str) -> None:
    assert backup_status(word) == status


@pytest.mark.parametrize(
    ("frequency", "interval"),
    [("daily", 86400.0), ("weekly", 604800.0), ("off", None), ("hourly", None), (None, None)],
)
def test_backup_frequencies(frequency: object, interval: float | None) -> None:
    assert backup_interval(frequency) == interval

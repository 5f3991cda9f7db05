"""Grafana dashboards: generate.py writes the JSON files beside it (`make dashboards`)."""

"""Prometheus rules, as code: `make alerts` writes saas-backup.rules.yml from rules.py, with the
numbers from thresholds.py, which the dashboards read too.
"""

"""Prometheus exporter for SaaS backup health."""

__version__ = "0.1.0"

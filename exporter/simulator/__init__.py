"""Fake vendor APIs on a real loopback socket: the demo's backend, the tests' peer, the
benchmark's load."""

from exporter.simulator.app import RequestRecord, Simulator
from exporter.simulator.faults import Fault, parse_fault
from exporter.simulator.fleet import Fleet, generate_fleet

__all__ = ["Fault", "Fleet", "RequestRecord", "Simulator", "generate_fleet", "parse_fault"]

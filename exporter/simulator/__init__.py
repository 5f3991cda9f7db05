"""Fake vendor APIs on a real loopback socket: the demo's backend, the tests' peer, the
benchmark's load. ``app.Simulator`` puts the registered vendors' parts together."""

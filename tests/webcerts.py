"""Real certificates for the web config tests, made with the openssl command line, and an
exporter served in-process with a web config."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.app import build_app
from exporter.config import build_config
from exporter.webconfig import LiveWebConfig, load_web_config
from tests.conftest import IN_CI, ServerThread, datto_source


@dataclass(frozen=True)
class Certs:
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    def text(self, name: str) -> str:
        return self.path(name).read_text(encoding="ascii")

    def client(
        self,
        cert: str | None = None,
        *,
        ca: str = "ca.pem",
        **settings: Any,
    ) -> ssl.SSLContext:
        """A client context trusting ``ca``, presenting ``cert`` (``NAME`` -> NAME.pem/NAME.key)."""
        context = ssl.create_default_context(cafile=str(self.path(ca)))
        if cert is not None:
            context.load_cert_chain(self.path(f"{cert}.pem"), self.path(f"{cert}.key"))
        for name, value in settings.items():
            if name == "ciphers":
                context.set_ciphers(value)
            elif name == "curve":
                context.set_ecdh_curve(value)
            else:
                setattr(context, name, value)
        return context


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        if IN_CI:
            pytest.fail("openssl is needed to make test certificates")
        pytest.skip("openssl missing")
    return path


def make_certs(folder: Path) -> Certs:
    """ca, a second unrelated CA (rogue), server and server2 (127.0.0.1, localhost), client
    (DNS client.example, URI spiffe://test/client) and rogue-client signed by the rogue CA; all
    P-256 keys, each NAME.pem with NAME.key."""
    openssl = _openssl()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True, timeout=60)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "rogue"):
        run("req", "-x509", *key, "-days", "2", "-subj", f"/CN={ca} CA",
            "-keyout", f"{ca}.key", "-out", f"{ca}.pem")  # fmt: skip
    leaves = {
        "server": ("ca", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        "server2": ("ca", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        "client": ("ca", "subjectAltName=DNS:client.example,URI:spiffe://test/client"),
        "rogue-client": ("rogue", "subjectAltName=DNS:client.example"),
    }
    for name, (ca, extension) in leaves.items():
        (folder / f"{name}.ext").write_text(extension + "\n", encoding="ascii")
        run("req", *key, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
        signer = ["-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial"]
        run("x509", "-req", "-in", f"{name}.csr", *signer, "-days", "2",
            "-extfile", f"{name}.ext", "-out", f"{name}.pem")  # fmt: skip
    run("pkey", "-in", "server.key", "-aes256", "-passout", "pass:hunter22", "-out", "locked.key")
    return Certs(folder)


@dataclass
class Served:
    server: ServerThread
    live: LiveWebConfig
    scheme: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.port}"

    @property
    def port(self) -> int:
        port: int = self.server.port
        return port


@contextmanager
def exporter_with(web: Path, **live: Any) -> Iterator[Served]:
    """The exporter's app, with the web config at ``web``, on a loopback port of its own."""
    config = build_config(
        {"cache": {"warm_up": False}, "sources": [datto_source("http://127.0.0.1:9")]}
    )
    loaded = load_web_config(web)
    watched = LiveWebConfig(loaded, **live)
    thread = ServerThread(build_app(config, web=watched))
    if loaded.tls is not None:
        # As the command line does it (exporter.cli._serve).
        thread.server.config.load()
        thread.server.config.ssl = watched.ssl_context()
    with thread as server:
        yield Served(server, watched, "https" if loaded.tls else "http")

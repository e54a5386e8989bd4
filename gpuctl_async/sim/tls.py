"""A throwaway self-signed serving certificate, so the sim can serve HTTPS.

kubectl (client-go) sends bearer tokens only over TLS; without this, a sim with
authentication on would look "Unauthorized" to kubectl whatever its kubeconfig says. The
certificate (EC P-256, 30 days, SANs ``localhost``, ``127.0.0.1`` and the listening host) is
made by the ``openssl`` command, run as a subprocess so the loop is never blocked, into a
private temporary directory that ``cleanup()`` removes. It is its own CA: kubeconfigs carry
it as ``certificate-authority-data``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import ssl
import tempfile
from pathlib import Path


class ServingCertificate:
    def __init__(self, directory: Path):
        self.directory = directory
        self.cert = directory / "tls.crt"
        self.key = directory / "tls.key"

    @classmethod
    async def create(cls, host: str) -> ServingCertificate:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("serving the simulated cluster over TLS needs the openssl "
                               "command")
        self = cls(Path(tempfile.mkdtemp(prefix="gpuctl-sim-tls-")))
        names = ["DNS:localhost", "IP:127.0.0.1"]
        try:
            ipaddress.ip_address(host)
            if host not in ("127.0.0.1", "0.0.0.0", "::"):
                names.append(f"IP:{host}")
        except ValueError:
            if host != "localhost":
                names.append(f"DNS:{host}")
        process = await asyncio.create_subprocess_exec(
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30", "-subj",
            "/CN=gpuctl-sim", "-addext", f"subjectAltName={','.join(names)}",
            "-keyout", str(self.key), "-out", str(self.cert),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await process.communicate()
        if process.returncode != 0:
            self.cleanup()
            raise RuntimeError(f"openssl could not make a certificate: {err.decode()[-500:]}")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def pem(self) -> bytes:
        return self.cert.read_bytes()

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

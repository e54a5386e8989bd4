"""Kubeconfig files pointing at a simulated cluster, for kubectl and kubernetes_asyncio."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

CONTEXT = "gpuctl-sim"


def kubeconfig(url: str, *, token: str | None = None, namespace: str = "default",
               ca_pem: bytes | None = None) -> dict:
    """``ca_pem``: the serving certificate of an HTTPS sim (``sim.tls``)."""
    user: dict = {"token": token} if token else {}
    cluster: dict = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT,
                                                   "namespace": namespace}}],
        "current-context": CONTEXT,
    }


def write_kubeconfig(path: str | os.PathLike, url: str, *, token: str | None = None,
                     namespace: str = "default", ca_pem: bytes | None = None) -> Path:
    """Write the file (mode 0600, as kubectl does: it may hold a token)."""
    path = Path(path)
    text = yaml.safe_dump(kubeconfig(url, token=token, namespace=namespace, ca_pem=ca_pem),
                          sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path

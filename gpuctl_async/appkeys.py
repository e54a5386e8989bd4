"""Typed keys for what the application object holds."""

from __future__ import annotations

from aiohttp import web

from gpuctl_async.k8s.client import KubeClient
from gpuctl_async.readiness import Readiness
from gpuctl_async.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
KUBE = web.AppKey("kube", KubeClient)
READINESS = web.AppKey("readiness", Readiness)

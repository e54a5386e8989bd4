"""Typed keys for what the application object holds."""

from __future__ import annotations

from aiohttp import web

from gpuctl_async.jobs.create import JobSubmitter
from gpuctl_async.jobs.listing import JobListing
from gpuctl_async.jobs.reasons import Explainer
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeClient
from gpuctl_async.logs.hub import LogHub
from gpuctl_async.readiness import Readiness
from gpuctl_async.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
KUBE = web.AppKey("kube", KubeClient)
CACHE = web.AppKey("cache", ClusterCache)
READINESS = web.AppKey("readiness", Readiness)
SUBMITTER = web.AppKey("submitter", JobSubmitter)
LISTING = web.AppKey("listing", JobListing)
EXPLAINER = web.AppKey("explainer", Explainer)
LOG_HUB = web.AppKey("log_hub", LogHub)

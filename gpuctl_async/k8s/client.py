"""The one door to the Kubernetes API: building the ``ApiClient`` and raw-JSON requests.

Everything goes through ``kubernetes_asyncio`` (auth, TLS, base URL, token refresh), but
responses are read as raw JSON dicts (``_preload_content=False``): model deserialization
costs ~2 ms per pod and would block the event loop on large lists (dependencies.md §3).
Failures become domain errors that keep Kubernetes' meaning: 404 stays 404, 409 stays 409,
422 Invalid becomes 400, 403 (quota) stays 403, an unreachable API server becomes 503.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson
from yarl import URL
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from gpuctl_async.errors import GpuctlError, Unavailable
from gpuctl_async.k8s import consistency
from gpuctl_async.k8s.impersonation import CALLER, Identity, impersonation_headers
from gpuctl_async.settings import Settings

log = logging.getLogger(__name__)

_IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_HTTP_STATUS_FOR_KUBE = {400: 400, 401: 503, 403: 403, 404: 404, 409: 409, 410: 409, 422: 400,
                         429: 503, 500: 502, 503: 503, 504: 503}


class KubeConfigError(Exception):
    """No usable cluster configuration; the message tells the user what to do."""


class KubeApiError(GpuctlError):
    """The API server answered with a failure ``Status``."""

    def __init__(self, code: int, reason: str, message: str, body: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.body = dict(body or {})
        self.status = _HTTP_STATUS_FOR_KUBE.get(code, 502)

    @property
    def is_not_found(self) -> bool:
        return self.code == 404

    @property
    def is_already_exists(self) -> bool:
        return self.code == 409 and self.reason == "AlreadyExists"

    @property
    def is_gone(self) -> bool:
        return self.code == 410


class KubeUnavailable(Unavailable):
    """The API server could not be reached or did not answer in time."""


@dataclass(frozen=True)
class ClusterTarget:
    """Where the service's Kubernetes requests go, for one log line (never secrets)."""

    source: str
    host: str


def _kubeconfig_path(settings: Settings) -> str | None:
    if settings.kubeconfig:
        return settings.kubeconfig
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


async def build_api_client(settings: Settings) -> tuple[client.ApiClient, ClusterTarget]:
    """Build the ``ApiClient`` from an explicit URL, a kubeconfig or in-cluster config."""
    cfg = client.Configuration()
    if settings.kube_api_url:
        cfg.host = settings.kube_api_url.rstrip("/")
        if settings.kube_token:
            cfg.api_key = {"BearerToken": settings.kube_token}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
        source = "explicit API URL"
    elif path := _kubeconfig_path(settings):
        if not Path(path).is_file():
            raise KubeConfigError(
                f"kubeconfig file {path} does not exist; pass --kubeconfig PATH to a valid file, "
                "or use --simulate to try gpuctl-async against the simulated cluster"
            )
        try:
            await config.load_kube_config(
                config_file=path, context=settings.context, client_configuration=cfg,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise KubeConfigError(f"kubeconfig {path} cannot be used: {exc}") from None
        source = f"kubeconfig {path}" + (f" (context {settings.context})" if settings.context else "")
    elif os.environ.get("KUBERNETES_SERVICE_HOST") and _IN_CLUSTER_TOKEN.is_file():
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException as exc:
            raise KubeConfigError(f"in-cluster configuration cannot be used: {exc}") from None
        source = "in-cluster service account"
    else:
        raise KubeConfigError(
            "no Kubernetes cluster configured: pass --kubeconfig PATH (or set KUBECONFIG, or "
            "create ~/.kube/config), run inside a cluster, or use --simulate to try "
            "gpuctl-async against the built-in simulated cluster"
        )
    _proxy_from_environment(cfg)
    api_client = client.ApiClient(configuration=cfg)
    _stop_reading_the_environment(api_client.rest_client)
    return api_client, ClusterTarget(source=source, host=cfg.host)


# kubernetes_asyncio's session trusts the environment (``trust_env=True``), which makes aiohttp
# look up proxies and ~/.netrc in a worker thread on every request: two thread hops per
# Kubernetes call, and file reads off the loop. The environment does not change while the
# service runs, so the proxy is read once here (HTTPS_PROXY/HTTP_PROXY/NO_PROXY, as
# client-go's ProxyFromEnvironment) and the session never looks again.

def _proxy_from_environment(cfg: client.Configuration) -> None:
    """Set ``cfg.proxy`` (and its credentials) from the environment, unless the kubeconfig
    named one (``proxy-url``)."""
    host = URL(cfg.host)
    if cfg.proxy or not host.host or proxy_bypass(host.host):
        return
    proxy = getproxies().get(host.scheme)
    if not proxy:
        return
    url = URL(proxy)
    if url.user is not None:
        cfg.proxy_headers = {
            "Proxy-Authorization": aiohttp.encode_basic_auth(url.user, url.password or "")}
        url = url.with_user(None)
    cfg.proxy = str(url)


def _stop_reading_the_environment(rest: Any) -> None:
    """The same connector (TLS, pool size) in a session that does not trust the environment."""
    trusting = rest.pool_manager
    rest.pool_manager = aiohttp.ClientSession(connector=trusting.connector, trust_env=False,
                                              read_bufsize=2**21)  # kubernetes_asyncio's
    trusting.detach()


class RequestObserver(Protocol):
    """Told of every request (``gpuctl_async.metrics.kube``): ``code`` 0 is no answer."""

    def observe(self, method: str, path: str, query: Mapping[str, Any] | None, code: int,
                seconds: float, impersonated: bool) -> None: ...


class KubeClient:
    """Raw-JSON access to the API server through a shared ``ApiClient``."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float = 30.0,
                 observer: RequestObserver | None = None):
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.observer = observer

    async def close(self) -> None:
        await self.api_client.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        """One request, answered with the response's JSON object (or what ``decode`` makes
        of the body: e.g. a list page decoded to the fields a cache keeps); failures
        raise."""
        response = await self.open(method, path, query=query, body=body,
                                   content_type=content_type,
                                   timeout=aiohttp.ClientTimeout(total=timeout or self.request_timeout))
        try:
            raw = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise KubeUnavailable(f"Kubernetes API server stopped answering: {exc!r}") from None
        finally:
            response.release()
        if method.upper() == "GET" and decode is not orjson.loads:
            return decode(raw)
        answer = orjson.loads(raw) if raw else {}
        if method.upper() != "GET":
            consistency.record(path, answer)  # for the request's consistency token
        return answer

    async def delete(self, path: str, **options: Any) -> bool:
        """DELETE one object with ``DeleteOptions`` (e.g. ``propagationPolicy``,
        ``gracePeriodSeconds``); False when it was already gone."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", **options}
        try:
            await self.request("DELETE", path, body=body)
        except KubeApiError as exc:
            if exc.is_not_found:
                return False
            raise
        return True

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | None = None,
        accept: str = "application/json",
    ) -> aiohttp.ClientResponse:
        """Start a request and return the open response (for watches and log streams).

        The caller owns the response and must ``release()`` or ``close()`` it. A failure
        status is raised as :class:`KubeApiError` before returning. A write (any method but
        GET) made while a caller is set (``impersonation.CALLER``) impersonates that caller.
        """
        method = method.upper()
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        timeout = timeout or aiohttp.ClientTimeout(sock_connect=10, sock_read=None)
        caller = CALLER.get() if method != "GET" else None
        started = time.perf_counter()
        try:
            if caller is not None:
                response = await self._impersonated(caller, method, path, params, headers,
                                                    body, timeout)
            else:
                response = await self.api_client.call_api(
                    path, method, query_params=params, header_params=headers, body=body,
                    auth_settings=["BearerToken"], _preload_content=False,
                    _request_timeout=timeout,
                )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self._observe(method, path, query, 0, started, caller is not None)
            raise KubeUnavailable(f"Kubernetes API server is unreachable: {_describe(exc)}") from None
        self._observe(method, path, query, response.status, started, caller is not None)
        if response.status >= 400:
            try:
                raw = await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                raw = b""
            finally:
                response.release()
            raise error_from_status(response.status, raw)
        return response

    def _observe(self, method: str, path: str, query: Mapping[str, Any] | None, code: int,
                 started: float, impersonated: bool) -> None:
        if self.observer is not None:
            self.observer.observe(method, path, query, code, time.perf_counter() - started,
                                  impersonated)

    async def _impersonated(self, caller: Identity, method: str, path: str,
                            params: list[tuple[str, str]], headers: dict[str, str], body: Any,
                            timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """Send one request through the ApiClient's own session, TLS and credentials, but
        built here: the generated client folds headers into a dict, and impersonation needs
        one ``Impersonate-Group`` header per group."""
        cfg = self.api_client.configuration
        rest = self.api_client.rest_client
        all_headers = impersonation_headers(caller)
        all_headers.update(headers)
        credentials = (await cfg.auth_settings()).get("BearerToken")
        if credentials and credentials.get("value"):
            all_headers[credentials["key"]] = credentials["value"]
        options: dict[str, Any] = {}
        if rest.proxy:
            options["proxy"] = rest.proxy
        if rest.proxy_headers:
            options["proxy_headers"] = rest.proxy_headers
        if rest.server_hostname:
            options["server_hostname"] = rest.server_hostname
        data = orjson.dumps(body) if body is not None else None
        return await rest.pool_manager.request(method, cfg.host + path, params=params,
                                               headers=all_headers, data=data,
                                               timeout=timeout, **options)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "request timed out"
    return str(exc) or type(exc).__name__


def error_from_status(code: int, raw: bytes) -> KubeApiError:
    """Turn a failure response (normally a ``Status`` object) into :class:`KubeApiError`."""
    try:
        status = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    message = status.get("message") or raw.decode(errors="replace").strip() or f"HTTP {code}"
    if code in (401,):
        message = f"Kubernetes API server refused the service's credentials: {message}"
    elif code >= 500:
        message = f"Kubernetes API server error: {message}"
    return KubeApiError(code, status.get("reason", ""), message, status)

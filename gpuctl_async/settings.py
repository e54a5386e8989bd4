"""Service settings, resolved from four layers, later ones winning:

defaults < ``config/gpuctl.yaml`` (or ``--config FILE`` / ``GPUCTL_CONFIG``) < ``GPUCTL_*``
environment variables < command-line flags.

Every field of :class:`Settings` is reachable from all three outside layers under derived
names: file key ``log_level``, environment variable ``GPUCTL_LOG_LEVEL``, flag
``--log-level`` (only the flags the CLI declares).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gpuctl_async.cors.origins import OriginError, normalise_origin
from gpuctl_async.documents.hostpaths import HostPathError, HostPathPolicy

ENV_PREFIX = "GPUCTL_"
DEFAULT_CONFIG_FILE = Path("config/gpuctl.yaml")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the service can be told from outside."""

    host: str = "127.0.0.1"
    """Address to listen on; ``0.0.0.0`` in a container."""

    port: int = 8000
    """TCP port to listen on (0: any free port)."""

    listen_backlog: int = 1024
    """Connections the kernel queues before the service accepts them (``listen(2)``'s
    backlog, capped by ``net.core.somaxconn``). aiohttp's 128 overflows when thousands of
    dashboards reconnect at once after a restart, and each dropped handshake costs its
    client seconds of TCP retransmits."""

    kubeconfig: str | None = None
    """Kubeconfig file. Unset: ``$KUBECONFIG``, then ``~/.kube/config``, then in-cluster config."""

    context: str | None = None
    """Kubeconfig context to use instead of the file's current context."""

    kube_api_url: str | None = None
    """Explicit Kubernetes API server URL (no kubeconfig); used for the simulated cluster."""

    kube_token: str | None = None
    """Bearer token sent with ``kube_api_url``. Never logged."""

    simulate: bool = False
    """Start the simulated cluster in-process and use it instead of a real cluster."""

    log_level: str = "INFO"
    """Log level for the service's own loggers: DEBUG, INFO, WARNING, ERROR."""

    access_log: bool = True
    """Log one line per HTTP request."""

    log_format: str = "text"
    """``text``: one human-readable line per event; ``json``: one JSON object per line (time,
    level, logger, message, requestId, and route, status and durationMs for requests)."""

    metrics: bool = True
    """Serve Prometheus metrics at ``/metrics`` and count what they need; false: neither
    (``/metrics`` answers 404)."""

    event_loop: str = "uvloop"
    """The asyncio loop ``serve`` runs on: ``uvloop`` (libuv, the loop aiohttp recommends:
    faster sockets and timers) or ``asyncio`` (the standard library's)."""

    freeze_heap: bool = True
    """Pause automatic garbage collection while the caches fill, and once every cache has
    synced, move the process's objects out of the cyclic garbage collector's passes
    (``gc.freeze``), so full passes over millions of cached objects never hold the loop. It is process-wide: turn it off when the app shares its process with
    others (tests, embedding), where the full collection it starts with costs more than it
    saves."""

    gc_young_threshold: int = 50_000
    """Net allocations between the cyclic garbage collector's young passes (CPython's default
    is 700; 0 leaves it). Spaced passes let the objects of a log line die before a pass sees
    them, so thousands of open log sockets do not set off full passes that hold every line
    in flight for hundreds of milliseconds; garbage in reference cycles waits a little
    longer (a few MiB at most). Process-wide, restored at shutdown."""

    gc_young_interval: float = 0.5
    """Seconds between young passes of the collector made besides CPython's own (0: none).
    Under churn the cache frees an old object for every new one, so CPython's count of net
    allocations hardly moves and its young passes come rarely and walk hundreds of thousands
    of objects (a quarter of a second at the envelope); paced ones walk what half a second
    made."""

    max_body_bytes: int = 1024 * 1024
    """Largest accepted request body; larger ones get 413."""

    kube_request_timeout: float = 30.0
    """Seconds a single (non-streaming) Kubernetes API request may take before 503."""

    ready_probe_interval: float = 5.0
    """How long a successful Kubernetes reachability check counts for ``/ready``."""

    event_retention: float = 3600.0
    """Seconds Kubernetes events are kept in the cache (job detail shows the newest 50)."""

    watch_timeout: int = 90
    """Seconds the API server is asked to keep a watch open (``timeoutSeconds``; each watch
    asks for 80-100 % of it). The server promises no bookmark before that end, so this is the
    longest silence it may leave: it must stay below ``watch_inactivity_timeout``."""

    watch_inactivity_timeout: float = 120.0
    """Seconds without a byte on a watch stream before it is taken for dead and reopened;
    more than ``watch_timeout``, so an idle but healthy watch never trips it."""

    watch_outage_grace: float = 60.0
    """Seconds a synced cache may be without a working watch (serving what it has) before
    ``/ready`` reports it; shorter reconnects are routine and keep the service ready."""

    watch_backoff_max: float = 30.0
    """Longest pause between attempts to reopen a failed watch (the backoff is capped here)."""

    read_your_writes_timeout: float = 5.0
    """After a write, how long a response waits for the cache to show it."""

    refuse_infeasible_jobs: bool = True
    """Refuse (400) a submitted job that can never run as the cluster is now (no node of its
    pool with its GPU type, a pod larger than any node of the pool, a quota below one pod's
    request); false: accept it with those findings as ``warnings``, for clusters whose nodes
    come and go (autoscaling)."""

    log_queue_lines: int = 1000
    """Lines a log WebSocket client may have waiting; beyond, the oldest are dropped."""

    log_stall_timeout: float = 30.0
    """Seconds a log WebSocket client may accept nothing before it is disconnected."""

    log_max_streams: int = 1000
    """Most upstream Kubernetes log streams open at once (one per followed container)."""

    log_stream_linger: float = 1.0
    """Seconds an upstream log stream stays open after its last subscriber left."""

    log_batch_window: float = 0.02
    """Longest wait (seconds, at most 0.05) to gather log lines into one WebSocket frame."""

    log_heartbeat: float = 25.0
    """Seconds between the pings every log WebSocket (``/logs/ws``, ``/api/v1/stream``) gets
    (at most 30); one that has answered nothing by the next ping is disconnected."""

    log_sse_keepalive: float = 15.0
    """Seconds of silence after which a log event stream (SSE) gets a comment line, so
    proxies do not cut it."""

    stream_max_subscriptions: int = 256
    """Most subscriptions one multiplexed socket (``/api/v1/stream``) may hold at once."""

    stream_max_pending_bytes: int = 8 * 1024 * 1024
    """Bytes one multiplexed socket may have queued for a slow client, all subscriptions
    together; past it, the subscription holding the most is ended with an error frame."""

    yaml_workers: int = 2
    """Worker processes that parse YAML documents over 1 KiB and JSON bodies over 64 KiB, off
    the event loop; also how many requests with a body over 64 KiB are read at a time."""

    yaml_parse_timeout: float = 5.0
    """Seconds one YAML document or JSON body may take to parse in a worker before the worker
    is killed and the request answered 400."""

    allowed_host_paths: tuple[str, ...] = ()
    """Node directories jobs may mount (``storage.workdirs``), as path prefixes; empty: any
    path but the node's system directories, which are always refused. Env: comma-separated."""

    rate_limit_per_second: float = 50.0
    """Requests per second each client address may make on average (0: no limit)."""

    rate_limit_burst: int = 200
    """Requests a client address may make at once before the average rate applies."""

    cors_origins: tuple[str, ...] = ()
    """Browser origins (``https://host[:port]``) allowed to call the API from another site
    and to open its WebSockets; empty: CORS off. Env: comma-separated."""

    auth: str = "kubernetes"
    """``kubernetes``: callers send a Kubernetes bearer token; TokenReview says who they are,
    SubjectAccessReview what they may read, and writes impersonate them. ``none``: anyone who
    reaches the port acts with the service's own rights. Default ``kubernetes``, except under
    ``simulate`` where it is ``none`` unless set."""

    auth_token_ttl: float = 60.0
    """Seconds a token's TokenReview answer is reused (cached by the token's SHA-256)."""

    auth_failure_ttl: float = 5.0
    """Seconds a rejected token stays rejected without asking Kubernetes again."""

    auth_cache_size: int = 10_000
    """Most tokens, and separately most access decisions, kept cached (oldest dropped)."""

    authz_ttl: float = 10.0
    """Seconds an access decision (SubjectAccessReview answer) is reused: a removed binding
    takes effect within this time."""

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    """Convert a raw file/env/flag value to the field's type, or raise SettingsError."""
    kind = FIELDS[name].type
    if value is None:
        if "None" in kind:
            return None
        raise SettingsError(f"setting '{name}' may not be empty")
    try:
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("tuple"):
            return _string_list(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting '{name}' has an invalid value {value!r}: {exc}") from None


def _string_list(value: Any) -> tuple[str, ...]:
    """A YAML list of strings, or one comma-separated string (how lists come from the
    environment); blank entries are dropped."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ValueError("expected a list of strings or a comma-separated string")
    return tuple(item.strip() for item in items if item.strip())


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a mapping of settings")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise SettingsError(f"config file {path} has unknown settings: {', '.join(unknown)}")
    return data


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: environ[ENV_PREFIX + name.upper()]
        for name in FIELDS
        if ENV_PREFIX + name.upper() in environ
    }


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings from every layer; ``overrides`` are the flags actually given."""
    environ = os.environ if environ is None else environ
    explicit = config_file or environ.get(ENV_PREFIX + "CONFIG")
    path = Path(explicit) if explicit else DEFAULT_CONFIG_FILE
    raw: dict[str, Any] = {}
    if explicit or path.is_file():
        raw.update(_from_file(path))
    raw.update(_from_env(environ))
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    values = {name: _coerce(name, value) for name, value in raw.items()}
    if "auth" not in values and values.get("simulate"):
        values["auth"] = "none"  # the simulated cluster is open unless asked otherwise
    settings = Settings(**values)
    if settings.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingsError(f"setting 'log_level' has an invalid value {settings.log_level!r}")
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"setting 'log_format' must be 'text' or 'json', not "
                            f"{settings.log_format!r}")
    if settings.event_loop not in ("uvloop", "asyncio"):
        raise SettingsError(f"setting 'event_loop' must be uvloop or asyncio, not "
                            f"{settings.event_loop!r}")
    if not 0 <= settings.port < 65536:
        raise SettingsError(f"setting 'port' must be between 0 and 65535, not {settings.port}")
    if not 1 <= settings.listen_backlog <= 65535:
        raise SettingsError(f"setting 'listen_backlog' must be between 1 and 65535, "
                            f"not {settings.listen_backlog}")
    if settings.max_body_bytes < 1024:
        raise SettingsError("setting 'max_body_bytes' must be at least 1024")
    if not 0 <= settings.log_batch_window <= 0.05:
        raise SettingsError("setting 'log_batch_window' must be between 0 and 0.05")
    if not 0 < settings.log_heartbeat <= 30:
        raise SettingsError("setting 'log_heartbeat' must be more than 0 and at most 30")
    if settings.log_sse_keepalive <= 0:
        raise SettingsError("setting 'log_sse_keepalive' must be more than 0")
    if settings.stream_max_subscriptions < 1 or settings.stream_max_pending_bytes < 1:
        raise SettingsError("settings 'stream_max_subscriptions' and "
                            "'stream_max_pending_bytes' must be at least 1")
    if settings.watch_timeout < 1:
        raise SettingsError("setting 'watch_timeout' must be at least 1")
    if settings.watch_inactivity_timeout <= settings.watch_timeout:
        raise SettingsError(
            f"setting 'watch_inactivity_timeout' ({settings.watch_inactivity_timeout:g}) must be "
            f"more than 'watch_timeout' ({settings.watch_timeout}): the API server may stay "
            f"silent until a watch's timeout ends it")
    if settings.watch_outage_grace < 0:
        raise SettingsError("setting 'watch_outage_grace' may not be negative")
    if settings.gc_young_threshold < 0:
        raise SettingsError("setting 'gc_young_threshold' must be at least 0")
    if not 0 <= settings.gc_young_interval <= 3600:
        raise SettingsError("setting 'gc_young_interval' must be between 0 and 3600 seconds")
    if settings.log_queue_lines < 1 or settings.log_max_streams < 1:
        raise SettingsError("settings 'log_queue_lines' and 'log_max_streams' must be at least 1")
    if settings.yaml_workers < 1 or settings.yaml_parse_timeout <= 0:
        raise SettingsError("setting 'yaml_workers' must be at least 1 and "
                            "'yaml_parse_timeout' more than 0")
    if settings.rate_limit_per_second < 0 or settings.rate_limit_burst < 0:
        raise SettingsError("settings 'rate_limit_per_second' and 'rate_limit_burst' may not be "
                            "negative")
    if settings.rate_limit_per_second > 0 and settings.rate_limit_burst < 1:
        raise SettingsError("setting 'rate_limit_burst' must be at least 1 while "
                            "'rate_limit_per_second' is set")
    if settings.auth not in ("kubernetes", "none"):
        raise SettingsError(f"setting 'auth' must be 'kubernetes' or 'none', not {settings.auth!r}")
    if min(settings.auth_token_ttl, settings.auth_failure_ttl, settings.authz_ttl) < 0:
        raise SettingsError("settings 'auth_token_ttl', 'auth_failure_ttl' and 'authz_ttl' may "
                            "not be negative")
    if settings.auth_cache_size < 1:
        raise SettingsError("setting 'auth_cache_size' must be at least 1")
    try:
        host_paths = HostPathPolicy.from_prefixes(settings.allowed_host_paths).allowed
        cors_origins = tuple(dict.fromkeys(normalise_origin(o) for o in settings.cors_origins))
    except HostPathError as exc:
        raise SettingsError(f"setting 'allowed_host_paths' has an invalid entry: {exc}") from None
    except OriginError as exc:
        raise SettingsError(f"setting 'cors_origins' has an invalid entry: {exc}") from None
    return settings.replace(log_level=settings.log_level.upper(),
                            allowed_host_paths=host_paths, cors_origins=cors_origins)

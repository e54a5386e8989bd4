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

    max_body_bytes: int = 1024 * 1024
    """Largest accepted request body; larger ones get 413."""

    kube_request_timeout: float = 30.0
    """Seconds a single (non-streaming) Kubernetes API request may take before 503."""

    ready_probe_interval: float = 5.0
    """How long a successful Kubernetes reachability check counts for ``/ready``."""

    event_retention: float = 3600.0
    """Seconds Kubernetes events are kept in the cache (job detail shows the newest 50)."""

    watch_inactivity_timeout: float = 120.0
    """Seconds without a byte on a watch stream before it is taken for dead and reopened."""

    watch_backoff_max: float = 30.0
    """Longest pause between attempts to reopen a failed watch (the backoff is capped here)."""

    read_your_writes_timeout: float = 5.0
    """After a write, how long a response waits for the cache to show it."""

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
    """Seconds between pings on an idle log WebSocket (at most 30)."""

    yaml_workers: int = 2
    """Worker processes that parse YAML documents over 4 KiB, off the event loop."""

    yaml_parse_timeout: float = 5.0
    """Seconds one YAML document may take to parse in a worker before it is killed (400)."""

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
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting '{name}' has an invalid value {value!r}: {exc}") from None


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
    settings = Settings(**values)
    if settings.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingsError(f"setting 'log_level' has an invalid value {settings.log_level!r}")
    if not 0 <= settings.port < 65536:
        raise SettingsError(f"setting 'port' must be between 0 and 65535, not {settings.port}")
    if settings.max_body_bytes < 1024:
        raise SettingsError("setting 'max_body_bytes' must be at least 1024")
    if not 0 <= settings.log_batch_window <= 0.05:
        raise SettingsError("setting 'log_batch_window' must be between 0 and 0.05")
    if not 0 < settings.log_heartbeat <= 30:
        raise SettingsError("setting 'log_heartbeat' must be more than 0 and at most 30")
    if settings.log_queue_lines < 1 or settings.log_max_streams < 1:
        raise SettingsError("settings 'log_queue_lines' and 'log_max_streams' must be at least 1")
    if settings.yaml_workers < 1 or settings.yaml_parse_timeout <= 0:
        raise SettingsError("setting 'yaml_workers' must be at least 1 and "
                            "'yaml_parse_timeout' more than 0")
    return settings.replace(log_level=settings.log_level.upper())

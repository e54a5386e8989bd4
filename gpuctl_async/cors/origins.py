"""Origins (``scheme://host[:port]``) as browsers send them in the ``Origin`` header.

Two spellings of one origin compare equal once normalised: scheme and host lower-cased, the
scheme's default port dropped, no trailing slash.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginError(ValueError):
    """Not an ``http(s)://host[:port]`` origin; the message says why."""


def _split(origin: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an origin, or OriginError."""
    try:
        parts = urlsplit(origin.strip().rstrip("/"))
        port = parts.port
    except ValueError as exc:
        raise OriginError(f"{origin!r} is not an origin: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise OriginError(f"{origin!r} is not an origin: expected http(s)://host[:port]")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise OriginError(f"{origin!r} is not an origin: only scheme, host and port")
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def normalise_origin(origin: str) -> str:
    """``HTTPS://Example.org:443/`` → ``https://example.org``."""
    scheme, host, port = _split(origin)
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    return f"{scheme}://{host}" if port == DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"


def is_own_origin(origin: str, host_header: str | None) -> bool:
    """Whether ``origin`` is the server's own, i.e. names the host and port the request was
    sent to (its ``Host`` header). A ``Host`` without a port matches an origin on its scheme's
    default port, whichever the scheme: behind a TLS-terminating proxy the page is
    ``https://name`` while the service itself speaks plain HTTP."""
    if not host_header:
        return False
    try:
        scheme, origin_host, origin_port = _split(origin)
        target = urlsplit(f"//{host_header.strip()}")
        target_port = target.port
    except (OriginError, ValueError):
        return False
    if (target.hostname or "").lower() != origin_host:
        return False
    if target_port is None:
        return origin_port == DEFAULT_PORTS[scheme]
    return target_port == origin_port

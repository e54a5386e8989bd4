"""Per-client-address request rate limits, applied before authentication."""

from gpuctl_async.ratelimit.middleware import setup_rate_limit

__all__ = ["setup_rate_limit"]

"""Per-client-address request rate limits, applied before authentication."""

from gpuctl_async.ratelimit.middleware import RATE_BUCKETS, client_key, setup_rate_limit

__all__ = ["RATE_BUCKETS", "client_key", "setup_rate_limit"]

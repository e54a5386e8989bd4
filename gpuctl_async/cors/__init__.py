"""Cross-origin browser access: CORS answers for listed origins, and the WebSocket Origin
check (a page on another site may not open the service's WebSockets)."""

from gpuctl_async.cors.middleware import setup_cors

__all__ = ["setup_cors"]

"""What log streaming counts about itself, read by the metrics collector at scrape time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LogStats:
    frames_sent: int = 0
    """WebSocket frames written to log clients (lines and control frames)."""
    lines_sent: int = 0
    lines_dropped: int = 0
    """Lines skipped for clients that read too slowly (they got a ``dropped`` frame)."""
    clients_stalled: int = 0
    """Clients disconnected for accepting nothing for ``log_stall_timeout``."""
    resumes: int = 0
    """Upstream log streams reopened (``sinceTime``) after they ended or dropped while the
    container went on, or for its next run."""

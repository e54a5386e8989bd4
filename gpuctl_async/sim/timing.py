"""How long simulated things take: image pulls, container starts, job runs, back-offs.

``Timing()`` is paced for a human watching ``kubectl get pods -w``; ``Timing.fast()`` keeps
the same sequence of states but compresses it for tests (a pod starts in about 50 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Timing:
    # Image pull when the node does not have the image yet (IfNotPresent) or always (Always).
    image_pull: float = 1.5
    # From "Created" to "Started" (and to the Running phase).
    container_start: float = 0.5
    # How long a Job pod's container runs before exiting (0 unless an annotation says).
    job_run: float = 5.0
    # How long a crash-looping or OOM-killed container runs before it dies.
    crash_after: float = 1.0
    # Restart and image-pull back-off: base * 2**(n-1), capped (the kubelet's 10 s .. 5 min).
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    # Readiness probes' initialDelaySeconds are multiplied by this.
    probe_scale: float = 1.0
    # How long a container takes to stop after SIGTERM (never more than the grace period).
    stop: float = 1.0
    # Delay before a controller retries a pod creation the API server refused.
    create_retry_max: float = 10.0

    @classmethod
    def fast(cls) -> Timing:
        return cls(image_pull=0.02, container_start=0.02, job_run=0.2, crash_after=0.03,
                   backoff_base=0.05, backoff_max=0.3, probe_scale=0.01, stop=0.05,
                   create_retry_max=0.3)

    def with_changes(self, **changes: float) -> Timing:
        return replace(self, **changes)

    def backoff(self, attempt: int, cap: float | None = None) -> float:
        """The delay before retry number ``attempt`` (1-based)."""
        return min(self.backoff_base * 2 ** max(0, attempt - 1),
                   self.backoff_max if cap is None else cap)

"""Which node directories a job's ``storage.workdirs`` may mount (hostPath volumes).

A hostPath volume on ``/``, ``/etc`` or the container runtime's socket is root on the node, so
the node's system directories are always refused; ``allowed_host_paths``, when set, further
limits mounts to paths at or under its prefixes. Everything here is lexical: paths are
normalised (``//``, ``.``, trailing ``/``) and compared component by component, never by
string prefix (``/data2`` is not under ``/data``). Symlinks on the node cannot be seen from
here; that is what the allowlist is for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Refused at or under; ``lib*`` stands for every top-level directory whose name starts with
# "lib" (/lib, /lib64, /lib32, /libx32, ...).
SYSTEM_DIRECTORIES: tuple[str, ...] = (
    "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/run", "/var/run", "/var/lib/kubelet",
    "/var/lib/containerd", "/var/lib/docker", "/usr", "/bin", "/sbin", "/lib*",
)


class HostPathError(ValueError):
    """A path that is not an absolute, ``..``-free path; the message says why."""


def normalise_host_path(path: str) -> str:
    """``//data/./x/`` → ``/data/x``; relative paths and ``..`` are refused, as Kubernetes
    refuses ``..`` in a hostPath (resolving it lexically would hide what is meant)."""
    if not path.startswith("/"):
        raise HostPathError("must be an absolute path")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise HostPathError("must not contain '..'")
    return "/" + "/".join(parts)


def _parts(normalised: str) -> tuple[str, ...]:
    return tuple(part for part in normalised.split("/") if part)


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether ``parts`` begins with ``pattern``; a final ``*`` in a pattern part is a prefix."""
    if len(parts) < len(pattern):
        return False
    for want, have in zip(pattern, parts):
        if want.endswith("*") and have.startswith(want[:-1]):
            continue
        if want != have:
            return False
    return True


_SYSTEM = tuple(_parts(directory) for directory in SYSTEM_DIRECTORIES)


def _system_directory_of(normalised: str) -> str | None:
    """The system directory ``normalised`` is at or under, if any."""
    parts = _parts(normalised)
    return next((directory for directory, pattern in zip(SYSTEM_DIRECTORIES, _SYSTEM)
                 if _matches(pattern, parts)), None)


def system_directory_problem(normalised: str) -> str | None:
    """Why mounting ``normalised`` would expose a node system directory, or None."""
    directory = _system_directory_of(normalised)
    if directory is not None:
        return (f"host path '{normalised}' is at or under the node system directory "
                f"{directory}; mounting it is not allowed")
    parts = _parts(normalised)
    for directory, pattern in zip(SYSTEM_DIRECTORIES, _SYSTEM):
        # A mount of an ancestor (/, /var, /var/lib) would hold the directory itself.
        if len(parts) < len(pattern) and _matches(pattern[:len(parts)], parts):
            return (f"host path '{normalised}' contains the node system directory {directory}; "
                    "mounting it is not allowed")
    return None


@dataclass(frozen=True)
class HostPathPolicy:
    """System directories are always refused; a non-empty ``allowed`` (normalised prefixes)
    is the only way in."""

    allowed: tuple[str, ...] = ()

    @classmethod
    def from_prefixes(cls, prefixes: Iterable[str]) -> HostPathPolicy:
        """From the ``allowed_host_paths`` setting; raises HostPathError for a bad prefix,
        including one inside a system directory, which could never let anything in."""
        allowed = tuple(dict.fromkeys(normalise_host_path(prefix) for prefix in prefixes))
        for prefix in allowed:
            directory = _system_directory_of(prefix)
            if directory is not None:
                raise HostPathError(f"'{prefix}' is under the node system directory "
                                    f"{directory}, which is always refused")
        return cls(allowed)

    def problem(self, normalised: str) -> str | None:
        """Why ``normalised`` may not be mounted, or None if it may."""
        reason = system_directory_problem(normalised)
        if reason is None and self.allowed and not any(
                _matches(_parts(prefix), _parts(normalised)) for prefix in self.allowed):
            reason = (f"host path '{normalised}' is outside the allowed host paths "
                      f"({', '.join(self.allowed)})")
        return reason


SYSTEM_DIRECTORIES_ONLY = HostPathPolicy()

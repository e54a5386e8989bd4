"""Load from ``wrk`` (C, event-driven) so the load generator is not what limits a figure.

A Python aiohttp client on this 2-core machine spends about as much CPU per request as the
service does, so figures measured with it are the client's. ``wrk`` is the Debian/Ubuntu
package ``wrk`` (``apt-get install -y wrk``; macOS: ``brew install wrk``). The benchmarks
take ``--load wrk`` and refuse it with that instruction when ``wrk`` is not installed.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkResult:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def require_wrk() -> None:
    if not wrk_available():
        raise SystemExit(INSTALL_HINT)


def _lua(paths: list[str], headers: dict[str, str]) -> str:
    quoted = ",".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in paths)
    header_lines = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    return (f"{header_lines}paths = {{{quoted}}}\n"
            "request = function()\n"
            "  return wrk.format(\"GET\", paths[math.random(#paths)])\n"
            "end\n")


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


async def run_wrk(base_url: str, paths: list[str], *, connections: int, seconds: float,
                  threads: int = 1, headers: dict[str, str] | None = None) -> WrkResult:
    """``wrk`` against ``base_url`` requesting random ``paths``; one thread by default (the
    machine has 2 cores and the service needs one)."""
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="wrk-") as workdir:
        script = Path(workdir) / "paths.lua"
        script.write_text(_lua(paths, headers or {}))
        process = await asyncio.create_subprocess_exec(
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
            "--latency", "-s", str(script), base_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output = (await process.communicate())[0].decode()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _milliseconds(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _milliseconds(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return WrkResult(rate, p50, p99, errors)

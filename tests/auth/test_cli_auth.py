"""`serve --simulate --auth kubernetes`, run as a real subprocess: demo identities printed
once on stdout, never in the log, and they work as documented."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp

from tests.helpers import eventually
from tests.test_cli import clean_env


async def test_serve_simulate_with_auth_prints_demo_tokens_once(tmp_path, unused_tcp_port):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async", "serve", "--simulate", "--auth", "kubernetes",
        "--port", str(unused_tcp_port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=clean_env(tmp_path), cwd=tmp_path)
    url = f"http://127.0.0.1:{unused_tcp_port}"
    printed = []
    try:
        while not printed or not printed[-1].startswith("Call the API"):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "serve exited before printing the demo identities"
            printed.append(line.decode().strip())
        tokens = dict(re.findall(r"^(admin|alice|bob) \(.*\)\s+(\S+)$", "\n".join(printed),
                                 re.MULTILINE))
        assert set(tokens) == {"admin", "alice", "bob"}

        async with aiohttp.ClientSession() as session:
            async def status(path, token=None, **params):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                try:
                    async with session.get(url + path, headers=headers, params=params) as resp:
                        return resp.status
                except aiohttp.ClientConnectionError:
                    return None
            await eventually(lambda: status("/ready"), lambda s: s == 200, timeout=30)
            assert await status("/api/v1/jobs") == 401
            assert await status("/api/v1/jobs", tokens["alice"], namespace="team-a") == 200
            assert await status("/api/v1/jobs", tokens["alice"], namespace="team-b") == 403
            assert await status("/api/v1/nodes", tokens["admin"]) == 200
    finally:
        proc.terminate()
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    log = err.decode()
    assert "SIMULATED cluster" in log and "Traceback" not in log
    stdout = "\n".join(printed) + out.decode()
    for token in tokens.values():
        assert stdout.count(token) == 1
        assert token not in log

"""The gpuctl-async command, run as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import sys

from gpuctl_async import __version__


async def run_cli(*args: str, env: dict[str, str] | None = None, cwd=None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


def clean_env(tmp_path) -> dict[str, str]:
    """An environment with no kubeconfig, no in-cluster hints and no GPUCTL_* settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GPUCTL_") and k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp_path)
    return env


async def test_version():
    code, out, _ = await run_cli("--version")
    assert code == 0
    assert out.strip() == f"gpuctl-async {__version__}"


async def test_help_shows_examples():
    code, out, _ = await run_cli("serve", "--help")
    assert code == 0
    for flag in ("--host", "--port", "--kubeconfig", "--context", "--simulate", "--config",
                 "--log-level", "--no-access-log"):
        assert flag in out
    assert "examples:" in out and "gpuctl-async serve --simulate" in out


async def test_no_cluster_is_one_clear_line(tmp_path):
    code, out, err = await run_cli("serve", "--port", "0", env=clean_env(tmp_path), cwd=tmp_path)
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "--kubeconfig" in lines[0] and "--simulate" in lines[0]


async def test_missing_kubeconfig_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    code, _, err = await run_cli("serve", "--kubeconfig", str(missing), env=clean_env(tmp_path),
                                 cwd=tmp_path)
    assert code != 0
    assert "Traceback" not in err
    assert str(missing) in err


async def test_bad_setting_is_one_clear_line(tmp_path):
    env = clean_env(tmp_path) | {"GPUCTL_PORT": "eighty"}
    code, _, err = await run_cli("serve", env=env, cwd=tmp_path)
    assert code != 0
    assert err.strip() == ("gpuctl-async: error: setting 'port' has an invalid value 'eighty': "
                           "invalid literal for int() with base 10: 'eighty'")


async def test_serve_simulate_becomes_ready(tmp_path, unused_tcp_port):
    """`serve --simulate` starts the simulated cluster in-process and turns /ready 200,
    listening with the configured backlog (aiohttp's own is 128)."""
    import aiohttp

    from tests.helpers import eventually

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async", "serve", "--simulate", "--port",
        str(unused_tcp_port), "--no-access-log",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=clean_env(tmp_path) | {"GPUCTL_LISTEN_BACKLOG": "777"}, cwd=tmp_path,
    )
    try:
        async with aiohttp.ClientSession() as session:
            async def ready_status():
                try:
                    async with session.get(f"http://127.0.0.1:{unused_tcp_port}/ready") as resp:
                        return resp.status
                except aiohttp.ClientConnectionError:
                    return None
            await eventually(ready_status, lambda status: status == 200, timeout=30)
        # ss shows a listening socket's backlog in its Send-Q column.
        ss = await asyncio.create_subprocess_exec(
            "ss", "-ltnH", f"sport = :{unused_tcp_port}", stdout=asyncio.subprocess.PIPE)
        listening, _ = await asyncio.wait_for(ss.communicate(), timeout=10)
        assert listening.split()[2] == b"777", listening
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    log = err.decode()
    assert "SIMULATED cluster" in log and "kubectl --kubeconfig" in log
    assert "Traceback" not in log

"""``gpuctl-async sim``: run the simulated cluster standalone until SIGINT/SIGTERM.

``add_arguments(parser)`` declares ``--host``, ``--port`` (0: ephemeral), ``--token``,
``--kubeconfig-out FILE``, ``--history-window`` and ``--bookmark-interval``; ``run(args)``
serves, prints ``gpuctl-async sim listening on http://HOST:PORT`` (one line, flushed, so a
parent process can read the port), writes the kubeconfig if asked, and returns 0 after a
clean stop.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from gpuctl_async.sim.testing import SimCluster


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    parser.add_argument("--token", default=None,
                        help="require this bearer token (default: no authentication)")
    parser.add_argument("--kubeconfig-out", metavar="FILE", default=None,
                        help="write a kubeconfig pointing at the simulated cluster")
    parser.add_argument("--history-window", type=int, default=20_000,
                        help="watch events kept per resource for resumption")
    parser.add_argument("--bookmark-interval", type=float, default=60.0,
                        help="seconds between watch bookmarks")


async def _serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with SimCluster(token=args.token, history_window=args.history_window,
                              bookmark_interval=args.bookmark_interval, host=args.host,
                              port=args.port) as sim:
            if args.kubeconfig_out:
                sim.write_kubeconfig(args.kubeconfig_out)
            print(f"gpuctl-async sim listening on {sim.url}", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpuctl-async sim",
                                     description="Run the simulated Kubernetes cluster.")
    add_arguments(parser)
    return run(parser.parse_args(argv))

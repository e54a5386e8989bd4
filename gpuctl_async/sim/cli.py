"""``gpuctl-async sim``: run the simulated cluster standalone until SIGINT/SIGTERM.

``add_arguments(parser)`` declares ``--host``, ``--port`` (0: ephemeral), ``--token`` (one
``system:masters`` token, user ``admin``), ``--token-file FILE`` (kube-apiserver's
``--token-auth-file`` CSV: ``token,user,uid,"group1,group2"``; either turns on
authentication, RBAC and audit, see ``sim.access``), ``--tls``/``--no-tls`` (serve HTTPS
with a throwaway certificate; default: on exactly when authentication is, since kubectl
sends tokens only over TLS), ``--kubeconfig-out FILE`` (with the ``--token`` token, if any,
and the certificate), ``--history-window``, ``--bookmark-interval``,
``--first-bookmark-delay``, ``--compaction-interval`` (``sim.watch.WatchTiming``),
``--namespace-finalize-seconds``, and for the
workloads: ``--nodes FILE`` (YAML list, see ``sim.topology``), ``--node SPEC`` (repeatable,
``name=n,pool=p,gpuType=a100,gpus=8,cpu=64,memoryGi=512``; either replaces the default
4-node GPU topology), ``--timing human|fast`` and ``--no-workloads`` (a bare API server with
no nodes unless given: no controllers, scheduler or kubelets); ``run(args)``
serves, prints ``gpuctl-async sim listening on http[s]://HOST:PORT`` (one line, flushed, so a
parent process can read the port), writes the kubeconfig if asked, and returns 0 after a
clean stop.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import signal

import yaml

from gpuctl_async.sim.authn import UserInfo, parse_token_file
from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import (
    build_node,
    default_nodes,
    load_nodes,
    parse_node_flag,
)
from gpuctl_async.sim.watch import WatchTiming


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    parser.add_argument("--token", default=None,
                        help="a system:masters bearer token, user 'admin' (turns "
                             "authentication and RBAC on; default: an open cluster)")
    parser.add_argument("--token-file", metavar="FILE", default=None,
                        help="static tokens, kube-apiserver --token-auth-file CSV: "
                             "token,user,uid,\"group1,group2\" (turns authentication and "
                             "RBAC on)")
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                        help="serve HTTPS with a self-signed certificate (default: when "
                             "--token or --token-file is given; kubectl sends tokens only "
                             "over TLS)")
    parser.add_argument("--kubeconfig-out", metavar="FILE", default=None,
                        help="write a kubeconfig pointing at the simulated cluster")
    parser.add_argument("--history-window", type=int, default=20_000,
                        help="watch events kept per resource for resumption")
    parser.add_argument("--bookmark-interval", type=float, default=60.0,
                        help="seconds between periodic watch bookmarks (default 60)")
    parser.add_argument("--first-bookmark-delay", type=float, default=120.0,
                        help="seconds before an idle watch's first bookmark (default 120)")
    parser.add_argument("--compaction-interval", type=float, default=300.0,
                        help="seconds between history compactions (default 300; 0: never)")
    parser.add_argument("--namespace-finalize-seconds", type=float, default=3.0,
                        help="seconds a deleted namespace stays Terminating at least (default 3)")
    parser.add_argument("--nodes", metavar="FILE", default=None,
                        help="YAML list of nodes to register instead of the default topology")
    parser.add_argument("--node", metavar="SPEC", action="append", default=[],
                        help="a node, as name=n,pool=p,gpuType=a100,gpus=8,cpu=64,memoryGi=512 "
                             "(repeatable; replaces the default topology)")
    parser.add_argument("--timing", choices=("human", "fast"), default="human",
                        help="pace of pod start-up, job runs and back-offs")
    parser.add_argument("--log-lines-per-second", type=float, default=2.0, metavar="RATE",
                        help="how fast running containers write log lines (default 2)")
    parser.add_argument("--no-workloads", dest="workloads", action="store_false",
                        help="serve a bare API server: no controllers, scheduler or kubelets")


def _nodes(args: argparse.Namespace) -> list[dict]:
    try:
        nodes = load_nodes(args.nodes) if args.nodes else []
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SystemExit(f"gpuctl-async sim: cannot read --nodes {args.nodes}: {exc}") from None
    for spec in args.node:
        try:
            nodes.append(build_node(parse_node_flag(spec), len(nodes)))
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"gpuctl-async sim: bad --node {spec!r}: {exc}") from None
    if not nodes and args.workloads and not args.nodes:
        nodes = default_nodes()
    return nodes


def _users(args: argparse.Namespace) -> dict[str, UserInfo] | None:
    if not args.token_file:
        return None
    try:
        return parse_token_file(args.token_file)
    except (OSError, ValueError, csv.Error) as exc:
        raise SystemExit(f"gpuctl-async sim: cannot read --token-file {args.token_file}: "
                         f"{exc}") from None


async def _serve(args: argparse.Namespace) -> int:
    users = _users(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        tls = args.tls if args.tls is not None else bool(args.token) or users is not None
        async with SimCluster(token=args.token, users=users, tls=tls,
                              history_window=args.history_window,
                              watch_timing=WatchTiming(
                                  bookmark_interval=args.bookmark_interval,
                                  first_bookmark_delay=args.first_bookmark_delay,
                                  compaction_interval=args.compaction_interval or None),
                              namespace_finalize_seconds=args.namespace_finalize_seconds,
                              host=args.host,
                              port=args.port, workloads=args.workloads, nodes=_nodes(args),
                              log_lines_per_second=args.log_lines_per_second,
                              timing=Timing.fast() if args.timing == "fast" else Timing()
                              ) as sim:
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

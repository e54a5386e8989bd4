"""The ``gpuctl-async`` command: ``serve`` the REST API, or run the simulated cluster (``sim``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from gpuctl_async import __version__, serving
from gpuctl_async.k8s.client import KubeConfigError
from gpuctl_async.logsetup import AccessLogger, configure_logging
from gpuctl_async.settings import SettingsError, load_settings
from gpuctl_async.sim import cli as sim_cli

log = logging.getLogger("gpuctl_async")

EXAMPLES = """\
examples:
  gpuctl-async serve --simulate                 try every endpoint against a simulated cluster
  gpuctl-async serve --kubeconfig ~/.kube/config --context prod
  gpuctl-async serve --host 0.0.0.0 --port 8000 inside a cluster (in-cluster service account)
  gpuctl-async sim --kubeconfig-out /tmp/sim.kubeconfig
                                                run only the simulated cluster, for kubectl

Every serve flag also reads from GPUCTL_<NAME> (e.g. GPUCTL_PORT) and from
config/gpuctl.yaml; flags win over the environment, which wins over the file.
API docs: http://<host>:<port>/docs
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuctl-async",
        description="Asynchronous REST server for running GPU work on Kubernetes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gpuctl-async {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve", help="serve the REST API", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--kubeconfig", metavar="PATH",
                       help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, in-cluster)")
    serve.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    serve.add_argument("--simulate", action="store_const", const=True,
                       help="start a simulated cluster in-process and serve against it")
    serve.add_argument("--auth", choices=("kubernetes", "none"),
                       help="kubernetes: callers' bearer tokens and RBAC decide (default, but "
                            "none with --simulate); none: everyone acts as the service")
    serve.add_argument("--config", metavar="FILE",
                       help="settings file (default config/gpuctl.yaml when present)")
    serve.add_argument("--log-level", metavar="LEVEL",
                       help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    serve.add_argument("--log-format", choices=("text", "json"),
                       help="text (default) or json: one JSON object per line")
    serve.add_argument("--no-access-log", dest="access_log", action="store_const", const=False,
                       help="do not log one line per HTTP request")
    serve.set_defaults(run=run_serve)

    sim = commands.add_parser(
        "sim", help="run the simulated Kubernetes cluster alone (for kubectl and tests)"
    )
    sim_cli.add_arguments(sim)
    sim.set_defaults(run=sim_cli.run)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name) for name in
                 ("host", "port", "kubeconfig", "context", "simulate", "auth", "log_level",
                  "log_format", "access_log")}
    try:
        settings = load_settings(config_file=args.config, overrides=overrides)
    except SettingsError as exc:
        return _fail(str(exc))
    configure_logging(settings.log_level, settings.log_format)

    from gpuctl_async.app import create_app

    try:
        serving.run(
            create_app(settings),
            loop_factory=lambda: new_event_loop(settings.event_loop),
            host=settings.host,
            port=settings.port,
            backlog=settings.listen_backlog,
            access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
            access_log_class=AccessLogger,
            on_listening=lambda: log.info("Serving on http://%s:%d (docs at /docs)",
                                          settings.host, settings.port),
        )
    except KubeConfigError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    return 0


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh loop of the configured kind (``serving.run`` runs and closes it)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:  # not built for this platform (Windows)
            log.warning("uvloop is not installed; running on the asyncio loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _fail(message: str) -> int:
    print(f"gpuctl-async: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

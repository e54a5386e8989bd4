"""Assemble the simulated API server: discovery, resources, ``/_sim`` faults, auth, errors.

``create_app(store, token=...)`` returns the aiohttp application; ``API_KEY``, ``FAULTS_KEY``
and ``STORE_KEY`` give access to its parts (part 2 registers subresources such as
``pods/log`` on ``app[API_KEY]``). Serve it with ``web.AppRunner(app,
handler_cancellation=True)`` so a watch whose client went away is cancelled at once rather
than at its next write (``testing.SimCluster`` and ``cli`` do).

Middlewares, outermost first: errors (any 404/405 aiohttp raises becomes a ``Status``, as
for unknown paths on a real server), bearer-token auth (401 ``Unauthorized`` Status; only
when a token is configured; ``/_sim`` and health checks are exempt), then faults (latency,
outages).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.compaction import Compactor
from gpuctl_async.sim.discovery import Discovery
from gpuctl_async.sim.faults import SIM_PREFIX, Faults
from gpuctl_async.sim.logs import PodLogs
from gpuctl_async.sim.rest import Api, status_response
from gpuctl_async.sim.store import Store
from gpuctl_async.sim.watch import WatchRegistry, WatchTiming

API_KEY = web.AppKey("sim_api", Api)
FAULTS_KEY = web.AppKey("sim_faults", Faults)
STORE_KEY = web.AppKey("sim_store", Store)
LOGS_KEY = web.AppKey("sim_logs", PodLogs)
_UNAUTHENTICATED = (SIM_PREFIX, "/healthz", "/livez", "/readyz")
# Kubernetes accepts objects up to about 3 MiB; seeding and lists need more headroom.
MAX_BODY = 32 * 1024 * 1024


@web.middleware
async def _errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return status_response(st.path_not_found())
    except web.HTTPMethodNotAllowed as exc:
        return status_response(st.StatusError(405, "MethodNotAllowed",
                                              f"the server does not allow this method on "
                                              f"the requested resource ({exc.method})", {}))


def _auth(token: str):
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if not request.path.startswith(_UNAUTHENTICATED):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return status_response(st.unauthorized())
        return await handler(request)

    return middleware


def create_app(store: Store, *, token: str | None = None,
               watch_timing: WatchTiming | None = None, log_lines_per_second: float = 2.0,
               log_buffer_lines: int = 10_000) -> web.Application:
    watch_timing = watch_timing or WatchTiming()
    watches = WatchRegistry()
    faults = Faults(store, watches)
    api = Api(store, watches, faults, watch_timing=watch_timing)
    middlewares = [_errors]
    if token:
        middlewares.append(_auth(token))
    middlewares.append(faults.middleware)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[API_KEY] = api
    app[FAULTS_KEY] = faults
    app[STORE_KEY] = store
    logs = app[LOGS_KEY] = PodLogs(store, lines_per_second=log_lines_per_second,
                                   buffer_lines=log_buffer_lines)
    api.register_subresource("pods", "log", logs.handle, ("get",), "Pod")
    faults.counter_sections["logs"] = lambda: {"open": logs.open_streams()}
    app.add_routes(faults.routes())
    app.add_routes(logs.routes())
    app.add_routes(Discovery(api.subresources).routes())
    app.add_routes(api.routes())

    async def close_watches(app: web.Application) -> None:
        watches.close_all()

    app.cleanup_ctx.append(Compactor(store, watch_timing.compaction_interval).ctx)
    app.on_shutdown.append(close_watches)
    app.on_shutdown.append(logs.on_shutdown)
    return app

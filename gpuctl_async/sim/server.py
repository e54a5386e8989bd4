"""Assemble the simulated API server: discovery, resources, ``/_sim`` faults, auth, errors.

``create_app(store, token=...)`` returns the aiohttp application; ``API_KEY``, ``FAULTS_KEY``
and ``STORE_KEY`` give access to its parts (part 2 registers subresources such as
``pods/log`` on ``app[API_KEY]``). Serve it with ``web.AppRunner(app,
handler_cancellation=True)`` so a watch whose client went away is cancelled at once rather
than at its next write (``testing.SimCluster`` and ``cli`` do).

Middlewares, outermost first: errors (any 404/405 aiohttp raises becomes a ``Status``, as
for unknown paths on a real server), access (authentication, impersonation, RBAC and audit,
``sim.access``; only when ``token`` or ``users`` is given: the open sim has no such
middleware; ``/_sim`` and health checks are exempt), then faults (latency, outages).

Authentication on: ``token`` is one ``system:masters`` token (user ``admin``), ``users`` maps
more tokens to identities (``authn.parse_token_file``); the bootstrap RBAC policy is created
(``rbac_defaults``), RBAC writes are checked for escalation (``escalation``), every namespace
gets its ``default`` ServiceAccount, and
``/_sim/audit`` records mutating requests. ``ACCESS_KEY`` and ``REVIEWS_KEY`` give the parts.
"""

from __future__ import annotations

from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.access import Access
from gpuctl_async.sim.audit import AuditLog
from gpuctl_async.sim.authn import MASTERS, Authenticator, UserInfo
from gpuctl_async.sim.compaction import Compactor
from gpuctl_async.sim.discovery import Discovery
from gpuctl_async.sim.escalation import EscalationCheck
from gpuctl_async.sim.faults import Faults
from gpuctl_async.sim.logs import PodLogs
from gpuctl_async.sim.rbac import RBAC, AlwaysAllow
from gpuctl_async.sim.rbac_defaults import bootstrap_policy
from gpuctl_async.sim.rest import Api, status_response
from gpuctl_async.sim.reviews import Reviews
from gpuctl_async.sim.service_accounts import DefaultServiceAccounts
from gpuctl_async.sim.store import Store
from gpuctl_async.sim.watch import WatchRegistry, WatchTiming

API_KEY = web.AppKey("sim_api", Api)
FAULTS_KEY = web.AppKey("sim_faults", Faults)
STORE_KEY = web.AppKey("sim_store", Store)
LOGS_KEY = web.AppKey("sim_logs", PodLogs)
ACCESS_KEY = web.AppKey("sim_access", Access)
REVIEWS_KEY = web.AppKey("sim_reviews", Reviews)
# The identity of the ``--token`` token.
ADMIN = UserInfo("admin", "admin", (MASTERS,))
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


def create_app(store: Store, *, token: str | None = None,
               users: dict[str, UserInfo] | None = None,
               watch_timing: WatchTiming | None = None, log_lines_per_second: float = 2.0,
               log_buffer_lines: int = 10_000) -> web.Application:
    watch_timing = watch_timing or WatchTiming()
    watches = WatchRegistry()
    faults = Faults(store, watches)
    api = Api(store, watches, faults, watch_timing=watch_timing)
    secured = bool(token) or users is not None
    authenticator = Authenticator(store, users)
    if token:
        authenticator.add_static(token, ADMIN)
    rbac = RBAC(store) if secured else None
    access = Access(authenticator, rbac or AlwaysAllow(), AuditLog())
    middlewares = [_errors]
    if rbac is not None:
        middlewares.append(access.middleware)
        EscalationCheck(store, rbac).install()
        bootstrap_policy(store)
        DefaultServiceAccounts(store).install()
    middlewares.append(faults.middleware)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[API_KEY] = api
    app[FAULTS_KEY] = faults
    app[STORE_KEY] = store
    app[ACCESS_KEY] = access
    reviews = app[REVIEWS_KEY] = Reviews(store, authenticator, access.authorizer)
    reviews.install(api)
    logs = app[LOGS_KEY] = PodLogs(store, lines_per_second=log_lines_per_second,
                                   buffer_lines=log_buffer_lines)
    api.register_subresource("pods", "log", logs.handle, ("get",), "Pod")
    faults.counter_sections["logs"] = lambda: {"open": logs.open_streams()}
    app.add_routes(faults.routes())
    app.add_routes(access.audit.routes())
    app.add_routes(logs.routes())
    app.add_routes(Discovery(api.subresources).routes())
    app.add_routes(api.routes())

    async def close_watches(app: web.Application) -> None:
        watches.close_all()

    app.cleanup_ctx.append(Compactor(store, watch_timing.compaction_interval).ctx)
    app.on_shutdown.append(close_watches)
    app.on_shutdown.append(logs.on_shutdown)
    return app

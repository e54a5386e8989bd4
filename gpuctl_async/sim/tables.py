"""Server-side printing: objects as ``meta.k8s.io`` Tables, which is what kubectl shows.

kubectl's ``get`` (and ``get -w``) asks for ``Accept: application/json;as=Table;v=v1;
g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`` and prints
the server's ``columnDefinitions`` and ``rows[].cells``; a server that answers with plain JSON
leaves it with NAME and AGE only. ``requested(request)`` reads that negotiation (first
acceptable clause wins, as in the API server) and ``includeObject`` (``Metadata``, the
default: each row carries a ``PartialObjectMetadata``; ``Object``: the whole object;
``None``: nothing).

The columns and cells follow ``pkg/printers/internalversion/printers.go``: pods ``NAME READY
STATUS RESTARTS AGE`` (+ ``IP NODE NOMINATED NODE READINESS GATES`` at priority 1, shown by
``-o wide``) with STATUS derived from the phase and container states as there; nodes,
namespaces, services, jobs, deployments, replicasets and statefulsets with their own columns;
roles and clusterroles ``NAME CREATED AT``; role bindings ``NAME ROLE AGE`` (+ ``USERS GROUPS
SERVICEACCOUNTS``); serviceaccounts ``NAME SECRETS AGE``; everything else ``NAME AGE``.

Watches (``TableWatchFramer``): every event's object is a Table with one row, and, as in the
API server's watch encoder, only the first carries ``columnDefinitions`` (kubectl reuses the
last ones it saw). A BOOKMARK is a Table with no rows and the bookmark's resourceVersion
(the real server would print the near-empty bookmark object as a row of blanks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.history import Entry
from gpuctl_async.sim.resources import ResourceType

_VERSIONS = ("v1", "v1beta1")
_INCLUDE = ("Metadata", "None", "Object")
_POD_DONE = [{"type": "Completed", "status": "True", "reason": "Succeeded",
              "message": "The pod has completed successfully."}]
_POD_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."}]


@dataclass(frozen=True)
class TableOptions:
    version: str  # meta.k8s.io version: v1 or v1beta1
    include_object: str

    @property
    def api_version(self) -> str:
        return f"meta.k8s.io/{self.version}"

    @property
    def content_type(self) -> str:
        return f"application/json;as=Table;v={self.version};g=meta.k8s.io"


def requested(request: web.Request) -> TableOptions | None:
    """The Table the request asks for, or None for the plain JSON representation."""
    for clause in request.headers.get("Accept", "").split(","):
        media, *raw_params = (part.strip() for part in clause.split(";"))
        params = dict(p.split("=", 1) for p in raw_params if "=" in p)
        if "as" not in params:
            if media in ("application/json", "application/*", "*/*", ""):
                return None
            continue
        if media == "application/json" and params.get("as") == "Table" and \
                params.get("g") == "meta.k8s.io" and params.get("v") in _VERSIONS:
            include = request.query.get("includeObject") or "Metadata"
            if include not in _INCLUDE:
                raise st.bad_request(
                    f'Unable to convert to Table as requested: includeObject: Unsupported '
                    f'value: "{include}": supported values: "Metadata", "None", "Object"')
            return TableOptions(params["v"], include)
    return None


# -- formatting helpers, as kubectl's -------------------------------------------------------

def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _since(stamp: str | None, now: float) -> str:
    at = _epoch(stamp)
    return "<unknown>" if at is None else human_duration(now - at)


def _age(obj: dict, now: float) -> str:
    return _since(obj["metadata"].get("creationTimestamp"), now)


def selector_string(selector: dict | None) -> str:
    """``metav1.LabelSelectorAsSelector(selector).String()``: requirements sorted by key."""
    selector = selector or {}
    terms = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator"), sorted(
            expr.get("values") or ())
        text = {"In": f"{key} in ({','.join(values)})",
                "NotIn": f"{key} notin ({','.join(values)})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(op, "")
        terms.append((key, text))
    return ",".join(text for _, text in sorted(terms))


def _format_selector(selector: dict | None) -> str:
    return selector_string(selector) or "<none>"


def _format_labels(labels: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _containers(template_spec: dict) -> list[str]:
    containers = template_spec.get("containers") or []
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers)]


def _template_spec(obj: dict) -> dict:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


# -- printers: (columns, cells(obj, now) -> (cells, row conditions)) -----------------------

def _col(name: str, description: str, type: str = "string", priority: int = 0) -> dict:
    column = {"name": name, "type": type, "format": "", "description": description,
              "priority": priority}
    if name == "Name":
        column["format"] = "name"
    return column


_NAME = _col("Name", "Name must be unique within a namespace.")
_AGE = _col("Age", "CreationTimestamp is a timestamp representing the server time when this "
                   "object was created.")
_WIDE_TEMPLATE = [_col("Containers", "Names of each container in the template.", priority=1),
                  _col("Images", "Images referenced by each container in the template.",
                       priority=1)]


def _pod_cells(pod: dict, now: float) -> tuple[list, list | None]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and \
                condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    restartable = {c.get("name") for c in spec.get("initContainers") or []
                   if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(restartable)
    ready = restarts = sidecar_restarts = 0
    last_restart = sidecar_last_restart = 0.0

    def finished(container: dict) -> float:
        terminated = (container.get("lastState") or {}).get("terminated") or {}
        return _epoch(terminated.get("finishedAt")) or 0.0

    initializing = False
    init_specs = spec.get("initContainers") or []
    for i, container in enumerate(status.get("initContainerStatuses") or []):
        restarts += container.get("restartCount", 0)
        last_restart = max(last_restart, finished(container))
        sidecar = container.get("name") in restartable
        if sidecar:
            sidecar_restarts += container.get("restartCount", 0)
            sidecar_last_restart = max(sidecar_last_restart, finished(container))
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if sidecar and container.get("started"):
            ready += 1 if container.get("ready") else 0
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts, last_restart = sidecar_restarts, sidecar_last_restart
        running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += container.get("restartCount", 0)
            last_restart = max(last_restart, finished(container))
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                reason = f"Signal:{terminated['signal']}" if terminated.get("signal") else \
                    f"ExitCode:{terminated.get('exitCode', 0)}"
            elif container.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"

    deleting = pod["metadata"].get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"
    ips = status.get("podIPs") or []
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_cell = f"{true}/{len(gates)}"
    cells = [pod["metadata"]["name"], f"{ready}/{total}", reason, restarts_cell,
             _age(pod, now), (ips[0].get("ip") if ips else "") or "<none>",
             spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
             gates_cell]
    conditions = _POD_DONE if phase == "Succeeded" else _POD_FAILED if phase == "Failed" \
        else None
    return cells, conditions


def _node_cells(node: dict, now: float) -> tuple[list, None]:
    labels = node["metadata"].get("labels") or {}
    status = node.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    states = [("Ready" if ready[-1].get("status") == "True" else "NotReady")] if ready \
        else ["Unknown"]
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = {key[len("node-role.kubernetes.io/"):] for key in labels
             if key.startswith("node-role.kubernetes.io/")} - {""}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        return next((a.get("address") for a in addresses if a.get("type") == kind),
                    None) or "<none>"

    info = status.get("nodeInfo") or {}
    return [node["metadata"]["name"], ",".join(states), ",".join(sorted(roles)) or "<none>",
            _age(node, now), info.get("kubeletVersion", ""), address("InternalIP"),
            address("ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"], None


def _namespace_cells(ns: dict, now: float) -> tuple[list, None]:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", ""),
            _age(ns, now)], None


def _service_cells(svc: dict, now: float) -> tuple[list, None]:
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = ",".join(spec.get("externalIPs") or []) or "<none>"
    if kind == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        found = sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})
        external = ",".join(found + list(spec.get("externalIPs") or [])) or "<pending>"
    elif kind == "ExternalName":
        external = spec.get("externalName", "")
    ports = ",".join(
        (f"{p.get('port')}:{p['nodePort']}" if p.get("nodePort") else f"{p.get('port')}")
        + f"/{p.get('protocol') or 'TCP'}" for p in spec.get("ports") or [])
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP")
                                             else [])
    return [svc["metadata"]["name"], kind, cluster_ips[0] if cluster_ips else "<none>",
            external, ports or "<none>", _age(svc, now),
            _format_labels(spec.get("selector"))], None


def _job_cells(job: dict, now: float) -> tuple[list, None]:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif (spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    started, done = _epoch(status.get("startTime")), _epoch(status.get("completionTime"))
    duration = "" if started is None else human_duration((done or now) - started)
    conditions: dict[str, str] = {}
    for condition in status.get("conditions") or []:
        conditions.setdefault(condition.get("type"), condition.get("status"))
    if conditions.get("Complete") == "True":
        state = "Complete"
    elif conditions.get("Failed") == "True":
        state = "Failed"
    elif job["metadata"].get("deletionTimestamp"):
        state = "Terminating"
    elif conditions.get("Suspended") == "True":
        state = "Suspended"
    elif conditions.get("FailureTarget") == "True":
        state = "FailureTarget"
    else:
        state = "Running"
    return [job["metadata"]["name"], state, completions, duration, _age(job, now),
            *_containers(_template_spec(job)), _format_selector(spec.get("selector"))], None


def _deployment_cells(dep: dict, now: float) -> tuple[list, None]:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    return [dep["metadata"]["name"],
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0),
            _age(dep, now), *_containers(_template_spec(dep)),
            selector_string(spec.get("selector"))], None


def _replicaset_cells(rs: dict, now: float) -> tuple[list, None]:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    return [rs["metadata"]["name"], spec.get("replicas", 0), status.get("replicas", 0),
            status.get("readyReplicas", 0), _age(rs, now), *_containers(_template_spec(rs)),
            _format_selector(spec.get("selector"))], None


def _statefulset_cells(sts: dict, now: float) -> tuple[list, None]:
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    return [sts["metadata"]["name"],
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", _age(sts, now),
            *_containers(_template_spec(sts))], None


def _role_cells(role: dict, now: float) -> tuple[list, None]:
    return [role["metadata"]["name"], role["metadata"].get("creationTimestamp") or ""], None


def _binding_cells(binding: dict, now: float) -> tuple[list, None]:
    ref = binding.get("roleRef") or {}
    by_kind: dict[str, list[str]] = {"User": [], "Group": [], "ServiceAccount": []}
    for subject in binding.get("subjects") or ():
        name = subject.get("name") or ""
        if subject.get("kind") == "ServiceAccount":
            name = f"{subject.get('namespace') or ''}/{name}"
        by_kind.setdefault(subject.get("kind") or "", []).append(name)
    return [binding["metadata"]["name"], f"{ref.get('kind')}/{ref.get('name')}",
            _age(binding, now), ", ".join(by_kind["User"]), ", ".join(by_kind["Group"]),
            ", ".join(by_kind["ServiceAccount"])], None


def _service_account_cells(account: dict, now: float) -> tuple[list, None]:
    return [account["metadata"]["name"], len(account.get("secrets") or ()),
            _age(account, now)], None


def _default_cells(obj: dict, now: float) -> tuple[list, None]:
    return [obj["metadata"]["name"], _age(obj, now)], None


Printer = tuple[list[dict], Callable[[dict, float], tuple[list, list | None]]]
_PRINTERS: dict[str, Printer] = {
    "pods": ([_NAME,
              _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
              _col("Status", "The aggregate status of the containers in this pod."),
              _col("Restarts", "The number of times the containers in this pod have been "
                               "restarted and when the last container in this pod has "
                               "restarted."),
              _AGE,
              _col("IP", "IP address allocated to the pod.", priority=1),
              _col("Node", "The node the pod is bound to.", priority=1),
              _col("Nominated Node", "The node the scheduler nominated for preemption.",
                   priority=1),
              _col("Readiness Gates", "Pod conditions evaluated for readiness.", priority=1)],
             _pod_cells),
    "nodes": ([_NAME, _col("Status", "The status of the node"),
               _col("Roles", "The roles of the node"), _AGE,
               _col("Version", "Kubelet Version reported by the node."),
               _col("Internal-IP", "List of addresses reachable to the node.", priority=1),
               _col("External-IP", "List of addresses reachable to the node.", priority=1),
               _col("OS-Image", "OS Image reported by the node.", priority=1),
               _col("Kernel-Version", "Kernel Version reported by the node.", priority=1),
               _col("Container-Runtime", "Container runtime version reported by the node.",
                    priority=1)],
              _node_cells),
    "namespaces": ([_NAME, _col("Status", "The status of the namespace"), _AGE],
                   _namespace_cells),
    "services": ([_NAME, _col("Type", "The type of the service."),
                  _col("Cluster-IP", "The IP address of the service."),
                  _col("External-IP", "External IPs of the service."),
                  _col("Port(s)", "The ports exposed by the service."), _AGE,
                  _col("Selector", "Route service traffic to pods with these labels.",
                       priority=1)],
                 _service_cells),
    "jobs.batch": ([_NAME, _col("Status", "Status of the job."),
                    _col("Completions", "The number of pods which reached phase Succeeded."),
                    _col("Duration", "Time required to complete the job."), _AGE,
                    *_WIDE_TEMPLATE,
                    _col("Selector", "A label query over pods.", priority=1)],
                   _job_cells),
    "deployments.apps": ([_NAME, _col("Ready", "Number of the pod with ready state"),
                          _col("Up-to-date", "Total number of non-terminated pods targeted "
                                             "by this deployment that have the desired "
                                             "template spec.", "integer"),
                          _col("Available", "Total number of available pods (ready for at "
                                            "least minReadySeconds) targeted by this "
                                            "deployment.", "integer"),
                          _AGE, *_WIDE_TEMPLATE,
                          _col("Selector", "Label selector for pods.", priority=1)],
                         _deployment_cells),
    "replicasets.apps": ([_NAME, _col("Desired", "Number of desired pods.", "integer"),
                          _col("Current", "The most recently observed number of replicas.",
                               "integer"),
                          _col("Ready", "The number of ready replicas.", "integer"), _AGE,
                          *_WIDE_TEMPLATE,
                          _col("Selector", "Label selector for pods.", priority=1)],
                         _replicaset_cells),
    "statefulsets.apps": ([_NAME, _col("Ready", "Number of the pod with ready state"), _AGE,
                           *_WIDE_TEMPLATE],
                          _statefulset_cells),
}
_ROLE: Printer = ([_NAME, _col("Created At", "Time is a wrapper around time.Time which "
                                              "supports correct marshaling to YAML and JSON.",
                               "date")], _role_cells)
_BINDING: Printer = ([_NAME, _col("Role", "RoleRef is the reference to the role."), _AGE,
                      _col("Users", "Users in the binding.", priority=1),
                      _col("Groups", "Groups in the binding.", priority=1),
                      _col("ServiceAccounts", "ServiceAccounts in the binding.", priority=1)],
                     _binding_cells)
_PRINTERS.update({
    "roles.rbac.authorization.k8s.io": _ROLE,
    "clusterroles.rbac.authorization.k8s.io": _ROLE,
    "rolebindings.rbac.authorization.k8s.io": _BINDING,
    "clusterrolebindings.rbac.authorization.k8s.io": _BINDING,
    "serviceaccounts": ([_NAME, _col("Secrets", "Secrets is a list of the secrets in the same "
                                                "namespace that pods running using this "
                                                "ServiceAccount are allowed to use.",
                                     "integer"), _AGE], _service_account_cells),
})
_DEFAULT: Printer = ([_NAME, _AGE], _default_cells)


def _printer(rt: ResourceType) -> Printer:
    return _PRINTERS.get(rt.key, _DEFAULT)


# -- tables -----------------------------------------------------------------------------------

def _row(cells_of: Callable, obj: dict, options: TableOptions, now: float) -> dict:
    cells, conditions = cells_of(obj, now)
    row: dict = {"cells": cells}
    if conditions:
        row["conditions"] = conditions
    if options.include_object == "Object":
        row["object"] = obj
    elif options.include_object == "Metadata":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": options.api_version,
                         "metadata": obj["metadata"]}
    return row


def table(rt: ResourceType, objects: list[dict], options: TableOptions, meta: dict, *,
          headers: bool = True) -> dict:
    columns, cells_of = _printer(rt)
    now = time.time()
    return {"kind": "Table", "apiVersion": options.api_version, "metadata": meta,
            "columnDefinitions": columns if headers else [],
            "rows": [_row(cells_of, obj, options, now) for obj in objects]}


def response(rt: ResourceType, entries: list[Entry], options: TableOptions,
             meta: dict) -> web.Response:
    body = orjson.dumps(table(rt, [e.obj for e in entries], options, meta))
    return web.Response(body=body, headers={"Content-Type": options.content_type})


class TableWatchFramer:
    """Watch lines whose objects are one-row Tables; headers only in the first."""

    def __init__(self, rt: ResourceType, options: TableOptions):
        self.rt = rt
        self.options = options
        self._headers = True

    def _line(self, type: str, objects: list[dict], rv: str) -> bytes:
        body = table(self.rt, objects, self.options, {"resourceVersion": rv},
                     headers=self._headers)
        self._headers = False
        return orjson.dumps({"type": type, "object": body}) + b"\n"

    def initial(self, entry: Entry) -> bytes:
        return self._line("ADDED", [entry.obj], entry.obj["metadata"]["resourceVersion"])

    def change(self, event, as_type: str | None = None) -> bytes:
        obj = event.entry.obj
        return self._line(as_type or event.type, [obj], obj["metadata"]["resourceVersion"])

    def stopped_matching(self, event) -> bytes:
        obj = dict(event.old.obj)
        obj["metadata"] = {**obj["metadata"], "resourceVersion": str(event.rv)}
        return self._line("DELETED", [obj], str(event.rv))

    def bookmark(self, rt: ResourceType, rv: int, initial_end: bool = False) -> bytes:
        return self._line("BOOKMARK", [], str(rv))

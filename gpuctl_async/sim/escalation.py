"""RBAC's escalation prevention: nobody grants permissions they do not hold.

As kube-apiserver's RBAC registry does it, for writes made over HTTP by an authenticated
user (``CURRENT_USER``, set by ``sim.access`` for the request; in-process writes by tests and
controllers are not checked):

- creating or changing the rules of a Role/ClusterRole needs ``escalate`` on it, or every
  rule covered by the user's own rules (in the role's namespace, or cluster-wide);
- creating or updating a RoleBinding/ClusterRoleBinding needs ``bind`` on the role it names,
  or that role's rules covered likewise (a missing role is its 404);
- ``system:masters`` may do anything.

The refusal is the real 403: ``roles.rbac.authorization.k8s.io "x" is forbidden: user
"alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not
currently held:\\n{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}``. ``Covers``,
``BreakdownRule``, ``CompactRules`` and ``CompactString`` are followed closely.
"""

from __future__ import annotations

from contextvars import ContextVar

from gpuctl_async.sim import status as st
from gpuctl_async.sim.authn import MASTERS, UserInfo
from gpuctl_async.sim.rbac import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    GROUP,
    RBAC,
    ROLE_BINDINGS,
    ROLES,
)
from gpuctl_async.sim.rest import RequestInfo
from gpuctl_async.sim.store import AdmissionRequest, Store

CURRENT_USER: ContextVar[UserInfo | None] = ContextVar("sim_current_user", default=None)


def _breakdown(rule: dict) -> list[dict]:
    atoms = []
    names = rule.get("resourceNames") or []
    for group in rule.get("apiGroups") or ():
        for resource in rule.get("resources") or ():
            for verb in rule.get("verbs") or ():
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                atoms += [{**base, "resourceNames": [n]} for n in names] if names else [base]
    for url in rule.get("nonResourceURLs") or ():
        atoms += [{"nonResourceURLs": [url], "verbs": [verb]} for verb in rule.get("verbs") or ()]
    return atoms


def _has_all(owner: list, wanted: list) -> bool:
    return all(w in owner for w in wanted)


def _resources_cover(owner: list, wanted: list) -> bool:
    if "*" in owner or _has_all(owner, wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_cover(owner: list, wanted: list) -> bool:
    return all(any(o == path or (o.endswith("*") and path.startswith(o.rstrip("*")))
                   for o in owner) for path in wanted)


def _covers(owner: dict, atom: dict) -> bool:
    verbs, groups = owner.get("verbs") or [], owner.get("apiGroups") or []
    owner_names, names = owner.get("resourceNames") or [], atom.get("resourceNames") or []
    return (("*" in verbs or _has_all(verbs, atom.get("verbs") or []))
            and ("*" in groups or _has_all(groups, atom.get("apiGroups") or []))
            and _resources_cover(owner.get("resources") or [], atom.get("resources") or [])
            and _urls_cover(owner.get("nonResourceURLs") or [], atom.get("nonResourceURLs") or [])
            and (not owner_names or (bool(names) and _has_all(owner_names, names))))


def _go_strings(values: list) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _compact_string(rule: dict) -> str:
    parts = [f"{label}:{_go_strings(rule[key])}" for key, label in (
        ("apiGroups", "APIGroups"), ("resources", "Resources"),
        ("nonResourceURLs", "NonResourceURLs"), ("resourceNames", "ResourceNames"),
        ("verbs", "Verbs")) if rule.get(key)]
    return "{" + ", ".join(parts) + "}"


def _compact(atoms: list[dict]) -> list[dict]:
    """CompactRules: simple resource rules of one group and resource merge their verbs."""
    merged: dict[tuple[str, str], dict] = {}
    out = []
    for atom in atoms:
        if atom.get("resourceNames") or atom.get("nonResourceURLs"):
            out.append(atom)
            continue
        key = (atom["apiGroups"][0], atom["resources"][0])
        if key in merged:
            merged[key]["verbs"] = merged[key]["verbs"] + atom["verbs"]
        else:
            merged[key] = dict(atom)
            out.append(merged[key])
    return out


class EscalationCheck:
    def __init__(self, store: Store, rbac: RBAC):
        self._store = store
        self._rbac = rbac

    def install(self) -> None:
        for rt in (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
            self._store.add_admission(rt, self._admit)

    def _allowed(self, user: UserInfo, verb: str, resource: str, namespace: str,
                 name: str) -> bool:
        attrs = RequestInfo(True, verb, "", GROUP, "v1", namespace, resource, "", name)
        return self._rbac.authorize(user, attrs)[0]

    def _admit(self, request: AdmissionRequest) -> None:
        user = CURRENT_USER.get()
        if user is None or MASTERS in user.groups:
            return
        obj, rt = request.obj, request.resource
        meta = obj["metadata"]
        namespace, name = meta.get("namespace") or "", meta["name"]
        if rt in (ROLES, CLUSTER_ROLES):
            if request.old is not None and request.old.get("rules") == obj.get("rules"):
                return
            if self._allowed(user, "escalate", rt.plural, namespace, name):
                return
            rules = obj.get("rules") or []
        else:
            ref = obj.get("roleRef") or {}
            plural = "roles" if ref.get("kind") == "Role" else "clusterroles"
            if self._allowed(user, "bind", plural, namespace, ref.get("name") or ""):
                return
            if plural == "roles":
                role = self._store.table(ROLES).get((namespace, ref.get("name") or ""))
            else:
                role = self._store.table(CLUSTER_ROLES).get(("", ref.get("name") or ""))
            if role is None:  # the lister's NotFound: singular resource
                singular = plural[:-1]
                raise st.StatusError(404, "NotFound", f'{singular}.{GROUP} "{ref.get("name")}" '
                                                      f'not found',
                                     {"name": ref.get("name") or "", "group": GROUP,
                                      "kind": singular})
            rules = role.obj.get("rules") or []
        owner, errors = self._rbac.rules_for(user, namespace)
        missing = [atom for rule in rules if isinstance(rule, dict) for atom in _breakdown(rule)
                   if not any(_covers(o, atom) for o in owner)]
        if not missing:
            return
        described = sorted({_compact_string(r) for r in _compact(missing)})
        message = (f'user "{user.name}" (groups={_go_strings(list(user.groups))}) is attempting '
                   f'to grant RBAC permissions not currently held:\n' + "\n".join(described))
        if errors:
            message += f"; resolution errors: [{', '.join(errors)}]"
        raise st.forbidden(rt, name, message)

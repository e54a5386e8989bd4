"""The RBAC authorizer, as kube-apiserver's (``plugin/pkg/auth/authorizer/rbac``).

``RBAC(store).authorize(user, attrs)`` → ``(allowed, reason)`` for request attributes
(``rest.RequestInfo``). The ``system:masters`` group is allowed everything first (the
privileged-group authorizer; reason ``""``). Otherwise ClusterRoleBindings are visited in name
order, then the RoleBindings of the request's namespace; a binding applies through its first
subject matching the user (``User`` by name, ``Group`` by membership, ``ServiceAccount`` by
``system:serviceaccount:NS:NAME``, NS defaulting to a RoleBinding's namespace); its role's
rules are tried in order with the real ``RuleAllows``:

- verbs, apiGroups: exact or ``*``; resources: ``*``, exact (``pods``, ``pods/log``) or
  ``*/subresource``; resourceNames: empty (any) or containing the name;
- non-resource requests: nonResourceURLs exact, ``*``, or a prefix ending in ``*``.

Allowed answers ``RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to Group "z"``;
denied answers ``""`` unless a binding names a missing role (``RBAC: clusterrole.rbac...
"x" not found``), which ``forbidden()`` appends to the message as the real server does.

Bindings are indexed by subject (users and service accounts by user name, groups by name)
and decisions are memoised until any RBAC object changes, so a warm check is one dict lookup.
"""

from __future__ import annotations

from gpuctl_async.sim import status as st
from gpuctl_async.sim.authn import MASTERS, UserInfo, service_account_username
from gpuctl_async.sim.history import WatchEvent
from gpuctl_async.sim.resources import BY_KEY
from gpuctl_async.sim.rest import RequestInfo
from gpuctl_async.sim.store import Store

GROUP = "rbac.authorization.k8s.io"
ROLES = BY_KEY[f"roles.{GROUP}"]
CLUSTER_ROLES = BY_KEY[f"clusterroles.{GROUP}"]
ROLE_BINDINGS = BY_KEY[f"rolebindings.{GROUP}"]
CLUSTER_ROLE_BINDINGS = BY_KEY[f"clusterrolebindings.{GROUP}"]
_CACHE_LIMIT = 100_000

Decision = tuple[bool, str]


# -- rule semantics (rbac/v1 helpers) -------------------------------------------------------

def _has(values: object, wanted: str) -> bool:
    return isinstance(values, list) and (wanted in values or "*" in values)


def _resource_matches(rule: dict, combined: str, subresource: str) -> bool:
    for resource in rule.get("resources") or ():
        if resource == "*" or resource == combined:
            return True
        if subresource and len(resource) == len(subresource) + 2 and \
                resource.startswith("*/") and resource.endswith(subresource):
            return True
    return False


def _url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url == "*" or url == path or (url.endswith("*") and
                                          path.startswith(url.rstrip("*"))):
            return True
    return False


def rule_allows(attrs: RequestInfo, rule: dict) -> bool:
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.is_resource:
        return _url_matches(rule, attrs.path)
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    names = rule.get("resourceNames")
    return (_has(rule.get("apiGroups"), attrs.api_group)
            and _resource_matches(rule, combined, attrs.subresource)
            and (not names or attrs.name in names))


# -- the authorizer --------------------------------------------------------------------------

def _subject_key(subject: dict, binding_namespace: str) -> tuple[str, str] | None:
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return ("user", name)
    if kind == "Group":
        return ("group", name)
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return ("user", service_account_username(namespace, name)) if namespace else None
    return None


def _describe_subject(subject: dict, binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return f'ServiceAccount "{subject.get("name")}/{namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


class RBAC:
    def __init__(self, store: Store):
        self._store = store
        self._cache: dict[tuple, Decision] = {}
        self._index: tuple[dict, dict] | None = None
        for rt in (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
            store.add_listener(rt, self._changed)

    def _changed(self, event: WatchEvent) -> None:
        self._cache.clear()
        self._index = None

    def _bindings(self) -> tuple[dict, dict]:
        """``({subject: [crb name]}, {(namespace, subject): [rb name]})``."""
        if self._index is None:
            cluster: dict[tuple[str, str], set[str]] = {}
            local: dict[tuple[str, tuple[str, str]], set[str]] = {}
            for (_, name), entry in self._store.table(CLUSTER_ROLE_BINDINGS).items():
                for subject in entry.obj.get("subjects") or ():
                    key = _subject_key(subject, "")
                    if key:
                        cluster.setdefault(key, set()).add(name)
            for (namespace, name), entry in self._store.table(ROLE_BINDINGS).items():
                for subject in entry.obj.get("subjects") or ():
                    key = _subject_key(subject, namespace)
                    if key:
                        local.setdefault((namespace, key), set()).add(name)
            self._index = cluster, local
        return self._index

    def authorize(self, user: UserInfo, attrs: RequestInfo) -> Decision:
        if MASTERS in user.groups:
            return True, ""
        # The path decides nothing for a resource request: leave it out of the key.
        key = (user.name, user.groups, attrs.is_resource, attrs.verb, attrs.api_group,
               attrs.resource, attrs.subresource, attrs.namespace, attrs.name,
               "" if attrs.is_resource else attrs.path)
        decision = self._cache.get(key)
        if decision is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            decision = self._cache[key] = self._decide(user, attrs)
        return decision

    def _decide(self, user: UserInfo, attrs: RequestInfo) -> Decision:
        cluster, local = self._bindings()
        keys = [("user", user.name), *(("group", g) for g in user.groups)]
        errors: list[str] = []
        names = sorted(set().union(*(cluster.get(k, ()) for k in keys)))
        table = self._store.table(CLUSTER_ROLE_BINDINGS)
        for name in names:
            entry = table.get(("", name))
            if entry is not None:
                allowed = self._visit(entry.obj, "", user, attrs, errors)
                if allowed:
                    return True, allowed
        if attrs.namespace:
            names = sorted(set().union(*(local.get((attrs.namespace, k), ()) for k in keys)))
            table = self._store.table(ROLE_BINDINGS)
            for name in names:
                entry = table.get((attrs.namespace, name))
                if entry is not None:
                    allowed = self._visit(entry.obj, attrs.namespace, user, attrs, errors)
                    if allowed:
                        return True, allowed
        if not errors:
            return False, ""
        return False, "RBAC: " + (errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")

    def _visit(self, binding: dict, namespace: str, user: UserInfo, attrs: RequestInfo,
               errors: list[str]) -> str:
        """The "allowed by" reason if ``binding`` grants ``attrs`` to ``user``, else ""."""
        subject = next((s for s in binding.get("subjects") or ()
                        if self._applies(s, namespace, user)), None)
        if subject is None:
            return ""
        ref = binding.get("roleRef") or {}
        kind, role_name = ref.get("kind"), ref.get("name") or ""
        if kind == "Role" and namespace:
            role = self._store.table(ROLES).get((namespace, role_name))
            missing = f'role.{GROUP} "{role_name}" not found'
        elif kind == "ClusterRole":
            role = self._store.table(CLUSTER_ROLES).get(("", role_name))
            missing = f'clusterrole.{GROUP} "{role_name}" not found'
        else:
            errors.append(f"unsupported role reference kind: {kind!r}")
            return ""
        if role is None:
            errors.append(missing)
            return ""
        for rule in role.obj.get("rules") or ():
            if isinstance(rule, dict) and rule_allows(attrs, rule):
                if namespace:
                    where = f'RoleBinding "{binding["metadata"]["name"]}/{namespace}"'
                else:
                    where = f'ClusterRoleBinding "{binding["metadata"]["name"]}"'
                return (f'RBAC: allowed by {where} of {kind} "{role_name}" to '
                        f'{_describe_subject(subject, namespace)}')
        return ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str]]:
        """Every rule granted to ``user`` cluster-wide and in ``namespace`` (what a
        SelfSubjectRulesReview lists), with the errors of bindings naming missing roles."""
        cluster, local = self._bindings()
        keys = [("user", user.name), *(("group", g) for g in user.groups)]
        rules: list[dict] = []
        errors: list[str] = []
        scopes = [("", CLUSTER_ROLE_BINDINGS, cluster, lambda k: k)]
        if namespace:
            scopes.append((namespace, ROLE_BINDINGS, local, lambda k: (namespace, k)))
        for scope, rt, index, index_key in scopes:
            table = self._store.table(rt)
            for name in sorted(set().union(*(index.get(index_key(k), ()) for k in keys))):
                entry = table.get((scope, name))
                if entry is None or not any(self._applies(s, scope, user)
                                            for s in entry.obj.get("subjects") or ()):
                    continue
                ref = entry.obj.get("roleRef") or {}
                if ref.get("kind") == "Role" and scope:
                    role = self._store.table(ROLES).get((scope, ref.get("name") or ""))
                    missing = f'role.{GROUP} "{ref.get("name")}" not found'
                else:
                    role = self._store.table(CLUSTER_ROLES).get(("", ref.get("name") or ""))
                    missing = f'clusterrole.{GROUP} "{ref.get("name")}" not found'
                if role is None:
                    errors.append(missing)
                    continue
                rules += [r for r in role.obj.get("rules") or () if isinstance(r, dict)]
        return rules, errors

    @staticmethod
    def _applies(subject: dict, namespace: str, user: UserInfo) -> bool:
        key = _subject_key(subject, namespace)
        if key is None:
            return False
        return key[1] == user.name if key[0] == "user" else key[1] in user.groups


class AlwaysAllow:
    """The open simulated cluster's authorizer (``--authorization-mode=AlwaysAllow``)."""

    def authorize(self, user: UserInfo, attrs: RequestInfo) -> Decision:
        return True, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str]]:
        return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["*"], "nonResourceURLs": ["*"]}], []


# -- refusals ---------------------------------------------------------------------------------

def forbidden_message(username: str, attrs: RequestInfo) -> str:
    if not attrs.is_resource:
        return f'User "{username}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = (f'in the namespace "{attrs.namespace}"' if attrs.namespace
             else "at the cluster scope")
    return (f'User "{username}" cannot {attrs.verb} resource "{resource}" in API group '
            f'"{attrs.api_group}" {where}')


def forbidden(username: str, attrs: RequestInfo, reason: str = "") -> st.StatusError:
    """The 403 Status of ``responsewriters.Forbidden``: ``pods is forbidden: User "alice"
    cannot list resource "pods" in API group "" in the namespace "team-b"``."""
    message = forbidden_message(username, attrs)
    if reason:
        message = f"{message}: {reason}"
    details: dict = {}
    if not attrs.is_resource or not attrs.resource:
        return st.StatusError(403, "Forbidden", f"forbidden: {message}", details)
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if attrs.name:
        details["name"] = attrs.name
        message = f'{qualified} "{attrs.name}" is forbidden: {message}'
    else:
        message = f"{qualified} is forbidden: {message}"
    if attrs.api_group:
        details["group"] = attrs.api_group
    details["kind"] = attrs.resource
    return st.StatusError(403, "Forbidden", message, details)

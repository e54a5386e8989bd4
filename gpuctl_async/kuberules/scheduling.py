"""kube-scheduler's node filters that do not depend on what else runs on the node.

A cordoned node (``spec.unschedulable``) carries the ``node.kubernetes.io/unschedulable``
taint and a node that is not Ready ``node.kubernetes.io/not-ready`` (both NoSchedule), which
the pod may tolerate like any other; NoSchedule and NoExecute taints the pod does not
tolerate exclude the node; so do a ``nodeSelector`` or a required node affinity it fails
(In, NotIn, Exists, DoesNotExist, Gt, Lt; ``matchFields`` on ``metadata.name``; an empty
term matches nothing; terms are ORed, expressions ANDed).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
_EXCLUDING = ("NoSchedule", "NoExecute")


def node_ready(node: dict) -> bool:
    """The node's Ready condition is True."""
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def tolerates(tolerations: Iterable[dict], taint: dict) -> bool:
    """Some toleration matches ``taint`` (key, value or Exists, and effect if it names one)."""
    for toleration in tolerations:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key")
        if toleration.get("operator") == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (toleration.get("value") or "") == (
                taint.get("value") or ""):
            return True
    return False


def untolerated_taint(tolerations: Iterable[dict], taints: Iterable[dict]) -> dict | None:
    """The first NoSchedule/NoExecute taint of ``taints`` not tolerated, or None."""
    tolerations = list(tolerations)
    for taint in taints:
        if taint.get("effect") in _EXCLUDING and not tolerates(tolerations, taint):
            return taint
    return None


def _number(value: str) -> Decimal | None:
    try:
        return Decimal(value)
    except ArithmeticError:
        return None


def _expression_matches(expression: dict, value: str | None) -> bool:
    operator, values = expression.get("operator"), expression.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        have, bound = _number(value), _number(values[0])
        if have is None or bound is None:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def _term_matches(term: dict, node_labels: dict, node_name: str | None) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no objects
    return (all(_expression_matches(e, node_labels.get(e.get("key"))) for e in expressions)
            and all(_expression_matches(f, node_name if f.get("key") == "metadata.name"
                                        else None) for f in fields))


def selects_node(pod_spec: dict, node: dict) -> bool:
    """The pod's nodeSelector and required node affinity accept ``node``."""
    meta = node.get("metadata") or {}
    node_labels = meta.get("labels") or {}
    if any(node_labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    return any(_term_matches(term, node_labels, meta.get("name"))
               for term in required.get("nodeSelectorTerms") or ())

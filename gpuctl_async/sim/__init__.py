"""A simulated Kubernetes cluster that speaks the Kubernetes REST API over real HTTP.

Module map (one concern each):

- ``resources``  the served types (group/version, kind, plural, scope, field selectors)
- ``store``      storage + object semantics + python API, change feed, admission hooks
- ``history``    stored entries, events encoded once, per-resource event logs (watch cache)
- ``gc``         garbage collection via ownerReferences, namespace deletion
- ``defaults``   / ``validation`` / ``allocators``  per-kind defaulting, validation, NodePorts
- ``selectors``  label and field selectors
- ``patch``      merge, strategic-merge and JSON patch
- ``status``     errors as Kubernetes Status objects
- ``rest``       resource handlers and the subresource registry; ``watch`` the watch streams
- ``discovery``  /version, /api, /apis, OpenAPI v3
- ``faults``     /_sim fault injection and counters
- ``server``     ``create_app``; ``kubeconfig``; ``testing.SimCluster``; ``cli``
"""

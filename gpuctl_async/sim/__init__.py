"""A simulated Kubernetes cluster that speaks the Kubernetes REST API over real HTTP.

Module map (one concern each):

- ``resources``  the served types (group/version, kind, plural, scope, field selectors)
- ``store``      storage + object semantics + python API, change feed, admission hooks
- ``history``    stored entries, events encoded once, per-resource event logs (watch cache)
- ``compaction`` timed history compaction, as kube-apiserver drives etcd's
- ``gc``         garbage collection via ownerReferences, namespace deletion
- ``defaults``   / ``validation`` / ``allocators``  per-kind defaulting, validation, NodePorts
- ``quantities`` quantities in the canonical form the API server stores
- ``selectors``  label and field selectors
- ``patch``      merge, strategic-merge and JSON patch; ``apply`` server-side apply
- ``status``     errors as Kubernetes Status objects
- ``rest``       resource handlers and the subresource registry; ``watch`` the watch streams
  and their timing (``WatchTiming``: bookmarks, timeouts, compaction interval)
- ``discovery``  /version, /api, /apis, OpenAPI v3
- ``faults``     /_sim fault injection and counters
- ``server``     ``create_app``; ``kubeconfig``; ``testing.SimCluster``; ``cli``
- ``protobuf``   the protobuf request bodies kubectl's typed clients send; ``tls`` HTTPS

Authentication and RBAC (only with a token or token file; ``access`` is the filter chain):

- ``authn``      token-file users, ServiceAccount tokens; ``service_accounts`` the defaults
- ``rbac``       the RBAC authorizer and Forbidden wording; ``rbac_defaults`` bootstrap roles;
  ``escalation`` no granting of rights one does not hold
- ``access``     authentication → impersonation → authorization → audit middleware
- ``reviews``    TokenReview, (Self/Local)SubjectAccessReview, SelfSubjectReview, TokenRequest
- ``audit``      the audit log and ``/_sim/audit``

Behaving like a cluster (``SimCluster(workloads=True)``, wired by ``cluster.Workloads``):

- ``controller`` the shared controller base; ``workqueue`` its de-duplicated work queue
- ``jobs``, ``replicasets``, ``deployments``, ``statefulsets``  the workload controllers
- ``scheduler``  binds pods to nodes that fit; ``kubelet`` runs them (states, probes, failures)
- ``quota``      ResourceQuota admission and status; ``priority`` PriorityClass admission
- ``events``     core/v1 Events, repeats aggregated (``count``, or the events.k8s.io/v1
  ``series`` the scheduler's recorder writes); ``usage`` pod requests and limits
- ``logs``       pods/log, driven by container statuses
- ``topology``   nodes (the default GPU topology, files, flags); ``timing`` human/fast pace
- ``seeding``    bulk Running jobs for benchmarks
"""

"""Kubernetes' own rules, written once for both sides of the wire.

The service (which predicts what the cluster will do, from its caches) and the simulated
cluster (which does it) must read a pod, a node or a quota the same way the API server,
kube-scheduler and the quota controller do. Those rules live here:

- :mod:`.quantity`: resource quantities (``500m``, ``32Gi``) as exact decimals;
- :mod:`.naming`: DNS-1123 names, label keys and values, with the API server's messages;
- :mod:`.resources`: a pod's effective requests and limits;
- :mod:`.scheduling`: node readiness, taints and tolerations, node selectors and affinity;
- :mod:`.quota`: what a pod counts against a ResourceQuota.

This package imports neither the service (``gpuctl_async.k8s``, ``jobs``, ...) nor the
simulator (``gpuctl_async.sim``); ``tests/sim/test_independence.py`` checks the sim's side.
"""

"""The simulated cluster's nodes: the default GPU topology and nodes from YAML or flags.

``default_nodes()`` is what ``gpuctl-async sim`` and ``serve --simulate`` start with:

==============  ===============  ==========  =====  ==============  ==============
node            pool             GPUs        cpu    memory          gpu-type label
==============  ===============  ==========  =====  ==============  ==============
train-a100-0    training-pool    8 x A100    128    1 TiB           a100
train-a100-1    training-pool    8 x A100    128    1 TiB           a100
infer-t4-0      inference-pool   4 x T4      48     192 GiB         t4
general-l4-0    (no pool label)  2 x L4      24     96 GiB          l4
==============  ===============  ==========  =====  ==============  ==============

A node is described in short form (``node_spec``) and expanded by ``build_node`` into a
Node object as a kubelet registers it: capacity and allocatable (system and kubelet
reservations subtracted), labels ``runwhere.ai/pool``, ``runwhere.ai/gpu-type``,
``nvidia.com/gpu.product``, ``nvidia.com/gpu.count``, hostname/os/arch labels, a Ready
condition and InternalIP/Hostname addresses. ``load_nodes(path)`` reads a YAML list whose
items are short forms (keys as ``node_spec``'s parameters: ``name``, ``pool``,
``gpuType``, ``gpuProduct``, ``gpus``, ``cpu``, ``memoryGi``, ``labels``, ``taints``) or
complete Node objects (``kind: Node``); ``parse_node_flag`` reads the
``name=n,pool=p,gpuType=t,gpus=8,cpu=64,memoryGi=512`` form of ``--node``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

from gpuctl_async.sim.gpuctl_objects import GPU_RESOURCE, GPU_TYPE, POOL

GPU_PRODUCTS = {"a100": "NVIDIA-A100-SXM4-80GB", "h100": "NVIDIA-H100-80GB-HBM3",
                "t4": "Tesla-T4", "l4": "NVIDIA-L4", "a10": "NVIDIA-A10G"}
KUBELET_VERSION = "v1.31.4"
_NODE_NETWORK = ipaddress.IPv4Network("10.0.0.0/16")


def node_spec(name: str, *, pool: str | None = None, gpuType: str | None = None,
              gpuProduct: str | None = None, gpus: int = 0, cpu: int = 16,
              memoryGi: int = 64, labels: dict | None = None,
              taints: list | None = None) -> dict:
    """A short node description (the YAML form), with defaults filled in."""
    return {"name": name, "pool": pool, "gpuType": gpuType,
            "gpuProduct": gpuProduct or GPU_PRODUCTS.get(gpuType or "", gpuType),
            "gpus": int(gpus), "cpu": int(cpu), "memoryGi": int(memoryGi),
            "labels": dict(labels or {}), "taints": list(taints or [])}


def default_node_specs() -> list[dict]:
    return [
        node_spec("train-a100-0", pool="training-pool", gpuType="a100", gpus=8, cpu=128,
                  memoryGi=1024),
        node_spec("train-a100-1", pool="training-pool", gpuType="a100", gpus=8, cpu=128,
                  memoryGi=1024),
        node_spec("infer-t4-0", pool="inference-pool", gpuType="t4", gpus=4, cpu=48,
                  memoryGi=192),
        node_spec("general-l4-0", gpuType="l4", gpus=2, cpu=24, memoryGi=96),
    ]


def default_nodes() -> list[dict]:
    """The default topology as Node objects (4 nodes, see the module docstring)."""
    return [build_node(spec, index) for index, spec in enumerate(default_node_specs())]


def _reserved_cpu_millis(cores: int) -> int:
    # GKE-style kube-reserved: 6% of the first core, 1% of the next, 0.5% of the next two,
    # 0.25% of the rest; plus 100m system-reserved.
    tiers = ((1, 60), (1, 10), (2, 5), (max(0, cores - 4), 2.5))
    return int(sum(min(count, cores) * per for count, per in tiers)) + 100


def build_node(spec: dict, index: int) -> dict:
    """Expand a short node description into a registered, Ready Node object."""
    spec = node_spec(**spec)
    name = spec["name"]
    memory_ki = spec["memoryGi"] * 1024 * 1024 - 512 * 1024  # firmware and kernel
    reserved_ki = 100 * 1024 + min(spec["memoryGi"], 128) * 1024 * 1024 // 40
    capacity = {"cpu": str(spec["cpu"]), "memory": f"{memory_ki}Ki", "pods": "110",
                "ephemeral-storage": "487652380Ki", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0"}
    allocatable = {**capacity,
                   "cpu": f"{spec['cpu'] * 1000 - _reserved_cpu_millis(spec['cpu'])}m",
                   "memory": f"{memory_ki - reserved_ki}Ki",
                   "ephemeral-storage": "449417758875"}
    node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                   "beta.kubernetes.io/arch": "amd64"}
    if spec["gpus"]:
        capacity[GPU_RESOURCE] = allocatable[GPU_RESOURCE] = str(spec["gpus"])
        node_labels["nvidia.com/gpu.count"] = str(spec["gpus"])
        if spec["gpuProduct"]:
            node_labels["nvidia.com/gpu.product"] = spec["gpuProduct"]
    if spec["gpuType"]:
        node_labels[GPU_TYPE] = spec["gpuType"]
    if spec["pool"]:
        node_labels[POOL] = spec["pool"]
    node_labels.update(spec["labels"])
    address = str(_NODE_NETWORK.network_address + 10 + index)
    condition = {"lastHeartbeatTime": None, "lastTransitionTime": None}
    conditions = [
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "message": "kubelet has sufficient memory available", **condition},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
         "message": "kubelet has no disk pressure", **condition},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
         "message": "kubelet has sufficient PID available", **condition},
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "message": "kubelet is posting ready status", **condition},
    ]
    node_spec_out: dict = {"podCIDR": f"10.244.{index}.0/24",
                           "podCIDRs": [f"10.244.{index}.0/24"]}
    if spec["taints"]:
        node_spec_out["taints"] = spec["taints"]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": node_labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": node_spec_out,
        "status": {
            "capacity": capacity, "allocatable": allocatable, "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": address},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                         "osImage": "Ubuntu 22.04.4 LTS", "kernelVersion": "5.15.0-1057",
                         "containerRuntimeVersion": "containerd://1.7.22",
                         "kubeletVersion": KUBELET_VERSION,
                         "kubeProxyVersion": KUBELET_VERSION,
                         "machineID": f"{index:032x}", "systemUUID": f"{index:032x}",
                         "bootID": f"{index:032x}"},
        },
    }


def nodes_from_items(items: list) -> list[dict]:
    """Short forms or complete Node objects → Node objects."""
    if not isinstance(items, list):
        raise ValueError("the nodes file must hold a YAML list of nodes")
    nodes = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"node #{index} is not a mapping")
        if item.get("kind") == "Node":
            nodes.append(item)
        else:
            try:
                nodes.append(build_node(item, index))
            except TypeError as exc:
                raise ValueError(f"node #{index}: {exc}") from None
    return nodes


def load_nodes(path: str | Path) -> list[dict]:
    return nodes_from_items(yaml.safe_load(Path(path).read_text()) or [])


def parse_node_flag(value: str) -> dict:
    """``name=n,pool=p,gpuType=a100,gpus=8,cpu=64,memoryGi=512`` → a short form."""
    spec: dict = {}
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if not sep:
            raise ValueError(f"expected key=value in {part!r}")
        spec[key.strip()] = item.strip()
    node_spec(**spec)  # raises TypeError on unknown keys
    return spec


def seed_nodes(store, nodes: list[dict]) -> None:
    """Register ``nodes`` (Node objects) in ``store``; nodes may be created with a status."""
    for node in nodes:
        store.create("nodes", node)

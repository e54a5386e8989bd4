"""Service cluster IPs and NodePorts, allocated without collisions as the API server does.

NodePorts come from 30000-32767: a requested port must be in range and free (422 Invalid
otherwise, with the real messages); a missing one gets a random free port; an update keeps
the ports a Service already holds. Cluster IPs come from 10.96.0.0/12. Allocations are
recorded only when the store commits (never for dry runs) and released on deletion.
"""

from __future__ import annotations

import ipaddress
import random

from gpuctl_async.sim.status import FieldError

NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767
_SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")

Key = tuple[str, str]


class ServiceAllocator:
    def __init__(self) -> None:
        self._node_ports: dict[int, Key] = {}
        self._ips: dict[str, Key] = {}
        self._next_ip = 10  # .1 is the kubernetes service in a real cluster
        self._random = random.Random()

    def assign(self, key: Key, obj: dict, old: dict | None) -> list[FieldError]:
        """Fill ``spec.clusterIP(s)`` and ``nodePort``s in ``obj``; errors if a requested
        one is taken or out of range. Records nothing (see ``commit``)."""
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        errors: list[FieldError] = []
        if spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        else:
            ip = old_spec.get("clusterIP") or spec.get("clusterIP")
            if not ip:
                ip = self._free_ip()
            elif ip != "None" and self._ips.get(ip, key) != key:
                errors.append(FieldError.invalid("spec.clusterIPs", [ip],
                                                 f"failed to allocate IP {ip}: provided IP "
                                                 "is already allocated"))
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        wants_ports = spec.get("type") in ("NodePort", "LoadBalancer")
        held = {(p.get("port"), p.get("protocol")): p.get("nodePort")
                for p in old_spec.get("ports") or [] if isinstance(p, dict)}
        taken: set[int] = set()
        for i, port in enumerate(spec.get("ports") or []):
            if not isinstance(port, dict):
                continue
            if not wants_ports:
                port.pop("nodePort", None)
                continue
            requested = port.get("nodePort") or held.get((port.get("port"), port.get("protocol")))
            if requested:
                if not isinstance(requested, int) or not (
                        NODE_PORT_MIN <= requested <= NODE_PORT_MAX):
                    errors.append(FieldError.invalid(
                        f"spec.ports[{i}].nodePort", requested,
                        "provided port is not in the valid range. The range of valid ports "
                        f"is {NODE_PORT_MIN}-{NODE_PORT_MAX}"))
                elif self._node_ports.get(requested, key) != key or requested in taken:
                    errors.append(FieldError.invalid(f"spec.ports[{i}].nodePort", requested,
                                                     "provided port is already allocated"))
                port["nodePort"] = requested
            else:
                port["nodePort"] = self._free_port(key, taken)
            taken.add(port["nodePort"])
        return errors

    def _free_port(self, key: Key, taken: set[int]) -> int:
        size = NODE_PORT_MAX - NODE_PORT_MIN + 1
        start = self._random.randrange(size)
        for offset in range(size):
            port = NODE_PORT_MIN + (start + offset) % size
            if port not in taken and self._node_ports.get(port, key) == key:
                return port
        raise RuntimeError("range for service node ports is full")

    def _free_ip(self) -> str:
        while True:
            ip = str(_SERVICE_CIDR[self._next_ip])
            self._next_ip += 1
            if ip not in self._ips:
                return ip

    def commit(self, key: Key, obj: dict) -> None:
        self.release(key)
        spec = obj.get("spec") or {}
        if spec.get("clusterIP") not in (None, "", "None"):
            self._ips[spec["clusterIP"]] = key
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and port.get("nodePort"):
                self._node_ports[port["nodePort"]] = key

    def release(self, key: Key) -> None:
        for table in (self._node_ports, self._ips):
            for held in [k for k, owner in table.items() if owner == key]:
                del table[held]

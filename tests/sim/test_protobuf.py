"""The protobuf request bodies the sim decodes for kubectl's typed clients."""

from __future__ import annotations

import aiohttp
import pytest

from gpuctl_async.sim.protobuf import decode
from gpuctl_async.sim.testing import SimCluster


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return b"k8s\x00" + _field(1, type_meta) + _field(2, raw)


def test_token_request_and_access_reviews():
    spec = _field(1, b"api") + _field(4, 1200)
    body = decode(envelope("authentication.k8s.io/v1", "TokenRequest",
                           _field(1, _field(1, b"robot")) + _field(2, spec)))
    assert body == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "metadata": {"name": "robot"},
                    "spec": {"audiences": ["api"], "expirationSeconds": 1200}}
    attributes = _field(1, b"team-a") + _field(2, b"list") + _field(5, b"pods")
    extra = _field(1, b"scopes") + _field(2, _field(1, b"a") + _field(1, b"b"))
    spec = _field(1, attributes) + _field(3, b"alice") + _field(4, b"devs") + \
        _field(5, extra)
    body = decode(envelope("authorization.k8s.io/v1", "SubjectAccessReview", _field(2, spec)))
    assert body["spec"] == {"resourceAttributes": {"namespace": "team-a", "verb": "list",
                                                   "resource": "pods"},
                            "user": "alice", "groups": ["devs"],
                            "extra": {"scopes": ["a", "b"]}}


@pytest.mark.parametrize("raw", [
    b"not protobuf",
    envelope("v1", "Endpoints", b""),                            # a kind not decoded here
    envelope("authentication.k8s.io/v1", "TokenRequest", b"\x12\x05ab"),   # truncated
    envelope("authentication.k8s.io/v1", "TokenRequest", _field(2, 7)),   # wrong wire type
    envelope("authorization.k8s.io/v1", "SubjectAccessReview",
             _field(2, _field(5, _field(1, b"k") + _field(2, 3)))),     # extra value not bytes
    envelope("authentication.k8s.io/v1", "TokenReview",
             _field(2, _field(1, b"\xff\xfe"))),                        # not UTF-8
    envelope("v1", "ConfigMap", _field(3, _field(1, b"k") + _field(2, 3))),  # bytes not bytes
    envelope("v1", "ResourceQuota",
             _field(2, _field(1, _field(1, b"cpu") + _field(2, 5)))),   # quantity not a message
    envelope("apps/v1", "Deployment", _field(2, _field(1, b"three"))),  # replicas not a varint
])
def test_malformed_bodies_are_value_errors(raw):
    with pytest.raises(ValueError):
        decode(raw)


async def test_undecodable_protobuf_is_415_over_http():
    async with SimCluster() as sim, aiohttp.ClientSession() as session:
        async with session.post(f"{sim.url}/api/v1/namespaces/default/pods",
                                data=envelope("v1", "Endpoints", b""),
                                headers={"Content-Type": "application/vnd.kubernetes.protobuf"}
                                ) as response:
            body = await response.json()
        assert response.status == 415 and body["reason"] == "UnsupportedMediaType"
        assert "no protobuf decoding for v1 Endpoints" in body["details"]["causes"][0]["message"]

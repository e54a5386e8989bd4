"""Pool and quota documents."""

from __future__ import annotations

import pytest

from gpuctl_async.kuberules.naming import DNS1123_LABEL_MESSAGE
from gpuctl_async.documents.examples import EXAMPLES

from .helpers import details, parse


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_example_is_valid(kind):
    assert parse(EXAMPLES[kind]).kind == kind


# pool ----------------------------------------------------------------------------------------

def test_pool_document_normalised():
    parsed = parse("kind: pool\npool: {name: p1, description: fast}\n"
                   "nodes:\n  n1: {gpuType: a100}\n  n2: {gpu-type: h100}\n  n3: {gpu_type: l4}\n"
                   "  n4:\n")
    assert parsed.name == "p1"
    assert parsed.spec == {
        "kind": "pool", "version": "v0.1",
        "pool": {"name": "p1", "description": "fast"},
        "nodes": {"n1": {"gpuType": "a100"}, "n2": {"gpuType": "h100"}, "n3": {"gpuType": "l4"},
                  "n4": {}},
    }


def test_pool_without_nodes():
    assert parse("kind: pool\npool: {name: p1}\n").spec["nodes"] == {}


def test_pool_errors():
    assert details("kind: pool\npool: {name: 'bad name'}\nnodes: {Node_1: {}, n2: {gpu: 1}}\n"
                   "extra: 1\n") == {
        "pool.name": ["a valid label must be an empty string or consist of alphanumeric "
                      "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                      "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                      "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"],
        "nodes.Node_1": ["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                         "characters, '-' or '.', and must start and end with an alphanumeric "
                         "character (e.g. 'example.com', regex used for validation is "
                         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
        "nodes.n2.gpu": ["Unknown field."],
        "extra": ["Unknown field."],
    }


def test_pool_name_required_and_nodes_a_mapping():
    assert details("kind: pool\npool: {}\nnodes: [n1]\n") == {
        "pool.name": ["Missing data for required field."],
        "nodes": ["Not a valid mapping."],
    }


# quota ---------------------------------------------------------------------------------------

def test_quota_document_normalised():
    parsed = parse("kind: quota\nquota: {name: team-q}\n"
                   "namespace:\n  team-a: {cpu: 0.5, memory: 2048Mi, gpu: '2'}\n"
                   "  team-b: {gpu: 0}\n")
    assert parsed.name == "team-q"
    assert parsed.spec == {
        "kind": "quota", "version": "v0.1",
        "quota": {"name": "team-q"},
        "namespace": {"team-a": {"cpu": "500m", "memory": "2Gi", "gpu": 2},
                      "team-b": {"gpu": 0}},
    }


def test_quota_with_only_default():
    spec = parse("kind: quota\nquota: {name: q}\ndefault: {memory: 0}\n").spec
    assert spec["default"] == {"memory": "0"}
    assert spec["namespace"] == {}


@pytest.mark.parametrize("rest", ["", "namespace: {}\n", "namespace:\n"])
def test_quota_needs_a_namespace_or_default(rest):
    assert details("kind: quota\nquota: {name: q}\n" + rest) == {
        "namespace": ["Define at least one namespace here or a 'default' section."]}


def test_quota_errors():
    assert details(
        "kind: quota\nquota: {name: Q_1}\n"
        "namespace:\n"
        "  default: {cpu: 1}\n"
        "  Bad: {cpu: 1}\n"
        "  a: {cpu: x, memory: 1GB, gpu: -1}\n"
        "  b: {}\n"
        "  c:\n"
        "  d: {disk: 1}\n"
        "default: {gpu: two}\n"
    ) == {
        "quota.name": [DNS1123_LABEL_MESSAGE],
        "namespace.default": [
            "set the quota of namespace 'default' in the top-level 'default' section"],
        "namespace.Bad": [DNS1123_LABEL_MESSAGE],
        "namespace.a.cpu": ["Invalid CPU format, should be a number or millicores (e.g., 8000m)"],
        "namespace.a.memory": ["Invalid memory format, should be like 32Gi"],
        "namespace.a.gpu": ["GPU count cannot be negative"],
        "namespace.b.cpu": ["Give at least one of cpu, memory, gpu."],
        "namespace.c.cpu": ["Give at least one of cpu, memory, gpu."],
        "namespace.d.disk": ["Unknown field."],
        "default.gpu": ["Not a valid integer."],
    }

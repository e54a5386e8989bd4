"""Small builders shared by the spec, manifest and reverse-mapping tests."""

from __future__ import annotations

import pytest
import yaml

from gpuctl_async.errors import ValidationFailed
from gpuctl_async.documents import parse_document

BASE = {
    "job": {"name": "demo"},
    "environment": {"image": "busybox"},
    "resources": {"cpu": 1, "memory": "256Mi"},
}


def document(kind: str = "training", **blocks: object) -> dict:
    """A minimal valid document of ``kind``; keyword blocks are merged over the base blocks
    (a value of ``...`` removes the block)."""
    doc: dict = {"kind": kind}
    for block, content in {**BASE, **blocks}.items():
        if content is ...:
            continue
        if isinstance(content, dict) and isinstance(BASE.get(block), dict):
            content = {**BASE[block], **content}
        doc[block] = content
    return doc


def parse(doc: dict | str, **kwargs: object):
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    return parse_document(text, **kwargs)


def failure(doc: dict | str, **kwargs: object) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse(doc, **kwargs)
    return caught.value


def details(doc: dict | str, **kwargs: object) -> dict:
    return failure(doc, **kwargs).details

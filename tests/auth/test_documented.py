"""Each operation's OpenAPI description and the README name the permission it needs."""

from __future__ import annotations

from pathlib import Path

from gpuctl_async.api.openapi import SPEC_PATH
from gpuctl_async.auth.permissions import ROUTES, markdown_table, rule_for


async def test_openapi_names_each_operations_permission_and_the_bearer_scheme(offline_client):
    spec = await (await offline_client.get(SPEC_PATH)).json()
    scheme = spec["components"]["securitySchemes"]["kubernetesBearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    documented = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            rule = rule_for(method.upper(), path)
            if rule is None or rule.where == "open":
                assert operation["security"] == [], (method, path)
                continue
            documented.add((method.upper(), path))
            assert operation["security"] == [{"kubernetesBearer": []}], (method, path)
            assert f"**Permission:** {rule.describe()}." in operation["description"]
            assert "401" in operation["responses"], (method, path)
    assert documented == {key for key, rule in ROUTES.items() if rule.where != "open"}


def test_readme_has_the_route_permission_table():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme

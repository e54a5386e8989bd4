"""The OpenAPI document covers every route, and /docs works with no external URL."""

from __future__ import annotations

import re

from aiohttp import web

from gpuctl_async.api.openapi import DOCS_PATH, SPEC_PATH, STATIC_PATH

# Routes that serve the documentation itself rather than the API.
_DOC_ROUTES = {SPEC_PATH, DOCS_PATH}


def api_routes(app: web.Application) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or path is None or path in _DOC_ROUTES:
            continue
        if info.get("prefix", "").startswith(STATIC_PATH) or "directory" in info:
            continue
        routes.append((route.method.lower(), path))
    return routes


def success_schema(operation: dict) -> dict | None:
    for code, response in operation.get("responses", {}).items():
        if str(code).startswith("2") or str(code) == "101":
            # JSON, except /metrics (Prometheus text)
            for media in response.get("content", {}).values():
                if media.get("schema"):
                    return media["schema"]
    return None


async def test_every_route_is_documented_with_schemas(offline_client):
    spec = await (await offline_client.get(SPEC_PATH)).json()
    assert spec["openapi"].startswith("3.")
    routes = api_routes(offline_client.app)
    assert ("get", "/health") in routes
    problems = []
    for method, path in routes:
        operation = spec["paths"].get(path, {}).get(method)
        if operation is None:
            problems.append(f"{method.upper()} {path}: missing from the spec")
            continue
        if not operation.get("summary") or not operation.get("tags"):
            problems.append(f"{method.upper()} {path}: no summary or tag")
        if success_schema(operation) is None:
            problems.append(f"{method.upper()} {path}: no response schema")
        if "500" not in operation.get("responses", {}):
            problems.append(f"{method.upper()} {path}: error responses not listed")
    assert not problems, "\n".join(problems)
    assert "Error" in spec["components"]["schemas"]


async def test_docs_page_is_offline(offline_client):
    resp = await offline_client.get(DOCS_PATH)
    assert resp.status == 200
    html = await resp.text()
    assert "swagger-ui" in html
    assert SPEC_PATH in html
    assert not re.findall(r"https?://[^\s\"'<>)]+", html), "the page must not load anything remote"
    assert "StandaloneLayout" not in html  # its validator badge would call validator.swagger.io
    assets = re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith(STATIC_PATH), asset
        asset_resp = await offline_client.get(asset)
        assert asset_resp.status == 200, asset


async def test_spec_is_valid_openapi_3(offline_client):
    from openapi_spec_validator import validate

    spec = await (await offline_client.get(SPEC_PATH)).json()
    validate(spec)  # raises with the offending path when the document is invalid


async def test_job_creation_documents_an_example_per_kind(offline_client):
    spec = await (await offline_client.get(SPEC_PATH)).json()
    body = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"training", "inference", "notebook", "compute"}
    for example in body["examples"].values():
        assert example["value"]["yamlContent"].startswith("kind: ")

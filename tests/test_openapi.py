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
        if path.startswith(STATIC_PATH) or "directory" in info:
            continue
        routes.append((route.method.lower(), path))
    return routes


def success_schema(operation: dict) -> dict | None:
    for code, response in operation.get("responses", {}).items():
        if str(code).startswith("2") or str(code) == "101":
            # JSON, except /metrics (Prometheus text) and the log event stream
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
    kinds = {"training", "inference", "notebook", "compute"}
    assert set(body["examples"]) == kinds | {f"{kind}-dry-run" for kind in kinds}
    for name, example in body["examples"].items():
        assert example["value"]["yamlContent"].startswith("kind: ")
        assert example["value"].get("dryRun", False) is name.endswith("-dry-run")


async def test_create_examples_work_as_given_on_the_default_topology(live_api):
    """What a new user does first: Try it out on each example against serve --simulate."""
    spec = await (await live_api.get(SPEC_PATH)).json()
    operation = spec["paths"]["/api/v1/jobs"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    # Dry runs first: the real ones would make them 409s.
    for name in sorted(examples, key=lambda n: not n.endswith("-dry-run")):
        resp = await live_api.post("/api/v1/jobs", json=examples[name]["value"])
        expected = 200 if name.endswith("-dry-run") else 201
        assert resp.status == expected, (name, await resp.text())
        answer = await resp.json()
        documented = operation["responses"][str(expected)]["content"]["application/json"]
        assert set(answer) == set(documented["example"]), name


async def test_the_document_describes_every_operation_and_parameter(offline_client):
    spec = await (await offline_client.get(SPEC_PATH)).json()
    assert all(tag.get("description") for tag in spec["tags"])
    problems, ids = [], []
    for path, operations in spec["paths"].items():
        assert "head" not in operations, path
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            ids.append(operation.get("operationId"))
            if not operation.get("description") or not operation.get("operationId"):
                problems.append(f"{where}: no description or operationId")
            for parameter in operation.get("parameters", ()):
                if not parameter.get("description"):
                    problems.append(f"{where}: parameter {parameter['name']} undescribed")
                if parameter["in"] == "path" and "pattern" not in parameter["schema"]:
                    problems.append(f"{where}: path parameter {parameter['name']} has no pattern")
            body = operation.get("requestBody")
            if body is not None and not body.get("required") and (method, path) not in {
                    ("put", "/api/v1/pools/{poolName}"), ("post", "/api/v1/nodes/labels/batch")}:
                problems.append(f"{where}: request body not marked required")
            for status, response in operation["responses"].items():
                example = response.get("content", {}).get("application/json", {}).get("example")
                if status.startswith(("4", "5")) and ("details" in (example or {})) != (
                        status == "400"):
                    problems.append(f"{where}: {status} example and details disagree")
    assert not problems, "\n".join(problems)
    assert None not in ids and len(ids) == len(set(ids))
    links = spec["paths"]["/api/v1/jobs"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} <= set(ids)
    assert {"getJob", "deleteJob"} <= {link["operationId"] for link in links.values()}
    pool = spec["components"]["schemas"]["CreatePoolRequest"]["properties"]
    assert pool["gpuType"]["oneOf"][1]["maxItems"] == 1 and pool["quota"]["not"] == {}


async def test_docs_page_is_small_compressed_and_cached(offline_client):
    resp = await offline_client.get(DOCS_PATH, headers={"Accept-Encoding": "gzip"})
    html = await resp.text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    on_the_wire = len(await resp.read())
    assets = re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", html)
    for asset in assets:
        resp = await offline_client.get(asset, headers={"Accept-Encoding": "gzip, br"},
                                        auto_decompress=False)
        assert resp.status == 200, asset
        assert "immutable" in resp.headers["Cache-Control"] and resp.headers["ETag"]
        if asset.endswith((".js", ".css")):
            assert resp.headers["Content-Encoding"] == "gzip", asset
        on_the_wire += len(await resp.read())
        again = await offline_client.get(asset, headers={"If-None-Match": resp.headers["ETag"]})
        assert again.status == 304
    resp = await offline_client.get(SPEC_PATH, headers={"Accept-Encoding": "gzip"},
                                    auto_decompress=False)
    assert resp.headers["Content-Encoding"] == "gzip"
    on_the_wire += len(await resp.read())
    assert on_the_wire < 700_000, f"a cold load of /docs is {on_the_wire} bytes"
    plain = await offline_client.get(assets[-1], headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers  # without Accept-Encoding: as stored


async def test_the_consistency_token_is_documented(offline_client):
    spec = await (await offline_client.get("/api/docs/openapi.json")).json()
    assert "X-Consistency-Token" == spec["components"]["parameters"]["ConsistencyToken"]["name"]
    create = spec["paths"]["/api/v1/jobs"]["post"]
    assert "X-Consistency-Token" in [p["name"] for p in create["parameters"]]
    assert "X-Consistency-Token" in create["responses"]["201"]["headers"]
    listing = spec["paths"]["/api/v1/jobs"]["get"]
    assert "X-Consistency-Token" in [p["name"] for p in listing["parameters"]]
    assert "headers" not in listing["responses"]["200"]
    assert "X-Consistency-Token" in spec["info"]["description"]


async def test_a_document_built_once_per_route_table_is_the_same_as_a_fresh_build(
        aiohttp_client, unreachable_settings):
    from gpuctl_async.api import openapi
    from gpuctl_async.app import create_app

    async def document(**changes) -> dict:
        client = await aiohttp_client(create_app(unreachable_settings.replace(**changes)))
        return await (await client.get(SPEC_PATH)).json()

    openapi._BUILT.clear()
    fresh = await document()
    assert len(openapi._BUILT) == 1
    assert await document() == fresh  # from the memo, and a copy: the first app's edits stay
    assert len(openapi._BUILT) == 1
    # Another route table is another document, never the memo of the first one.
    without_metrics = await document(metrics=False)
    assert "/metrics" in fresh["paths"] and "/metrics" not in without_metrics["paths"]
    assert len(openapi._BUILT) == 2

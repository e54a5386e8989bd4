"""Request validation answers 400 with field paths, never 422; malformed JSON is 400."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import querystring_schema, request_schema
from marshmallow import Schema, fields, validate

from gpuctl_async.app import create_app


class _Inner(Schema):
    gpu = fields.Integer(required=True, validate=validate.Range(min=0))


class _Body(Schema):
    name = fields.String(required=True)
    resources = fields.Nested(_Inner, required=True)


class _Query(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))


@request_schema(_Body)
async def _create(request: web.Request) -> web.Response:
    return web.json_response(request["data"])


@querystring_schema(_Query)
async def _list(request: web.Request) -> web.Response:
    return web.json_response(request["querystring"])


async def _client(aiohttp_client, settings):
    app = create_app(settings)
    app.router.add_post("/things", _create)
    app.router.add_get("/things", _list)
    return await aiohttp_client(app)


async def test_invalid_body_is_400_with_field_paths(aiohttp_client, unreachable_settings):
    client = await _client(aiohttp_client, unreachable_settings)
    resp = await client.post("/things", json={"resources": {"gpu": -1}})
    assert resp.status == 400
    body = await resp.json()
    assert body["details"] == {
        "name": ["Missing data for required field."],
        "resources.gpu": ["Must be greater than or equal to 0."],
    }
    assert "name" in body["error"] and "resources.gpu" in body["error"]


async def test_invalid_query_is_400(aiohttp_client, unreachable_settings):
    client = await _client(aiohttp_client, unreachable_settings)
    resp = await client.get("/things", params={"page": "0"})
    assert resp.status == 400
    assert (await resp.json())["details"] == {"page": ["Must be greater than or equal to 1."]}
    ok = await client.get("/things", params={"page": "3"})
    assert await ok.json() == {"page": 3}


async def test_malformed_json_is_400(aiohttp_client, unreachable_settings):
    client = await _client(aiohttp_client, unreachable_settings)
    resp = await client.post("/things", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("Request body is not valid JSON")


async def test_valid_body_reaches_the_handler(aiohttp_client, unreachable_settings):
    client = await _client(aiohttp_client, unreachable_settings)
    resp = await client.post("/things", json={"name": "a", "resources": {"gpu": 2}})
    assert resp.status == 200
    assert await resp.json() == {"name": "a", "resources": {"gpu": 2}}


class _OtherQuery(Schema):
    page = fields.Integer(load_default=5)
    size = fields.Integer(load_default=7)


@querystring_schema(_OtherQuery)
async def _other(request: web.Request) -> web.Response:
    parsed = request["querystring"]
    answer = dict(parsed)
    parsed["size"] = -1  # a handler scribbling on its copy must not reach the next request
    return web.json_response(answer)


async def test_parsed_queries_are_remembered_per_schema(aiohttp_client, unreachable_settings):
    app = create_app(unreachable_settings)
    app.router.add_get("/things", _list)
    app.router.add_get("/others", _other)
    client = await aiohttp_client(app)
    for _ in range(3):
        assert await (await client.get("/things?page=2")).json() == {"page": 2}
        assert await (await client.get("/others?page=2")).json() == {"page": 2, "size": 7}
        assert (await client.get("/things?page=0")).status == 400


async def test_a_body_of_the_wrong_type_is_named_as_the_body(aiohttp_client, unreachable_settings):
    client = await _client(aiohttp_client, unreachable_settings)
    resp = await client.post("/things", data=b"[1, 2]",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    body = await resp.json()
    assert list(body["details"]) == ["body"] and body["error"] == "Invalid request: body"

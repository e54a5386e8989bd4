"""The ``/docs`` page (Swagger UI) and its assets: small, compressed, cached.

aiohttp-apigami's page loads 1.8 MB of JavaScript uncompressed, with no cache headers and no
viewport for phones. This page loads only Swagger UI's bundle and stylesheet (the Base layout
needs no standalone preset), gzip-compressed when the browser accepts it, with a week of
caching keyed on the Swagger UI version; a cold load is about 450 KB on the wire.

The assets are read and compressed once per process, in a short-lived worker process (file
I/O and a few hundred milliseconds of zlib would otherwise run on the event loop).
"""

from __future__ import annotations

import asyncio
import gzip
import mimetypes
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from aiohttp import web
from aiohttp_apigami.constants import SWAGGER_DICT
from aiohttp_apigami.swagger_ui import SWAGGER_UI_STATIC_FILES

from gpuctl_async.api.responses import dumps

from gpuctl_async.errors import NotFound

ASSETS = ("swagger-ui.css", "index.css", "swagger-ui-bundle.js", "favicon-32x32.png",
          "favicon-16x16.png")
CACHE_SECONDS = 7 * 24 * 3600
VERSION = (SWAGGER_UI_STATIC_FILES / "VERSION").read_text().strip()

PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>GPU Control API</title>
  <link rel="stylesheet" type="text/css" href="{static}/{version}/swagger-ui.css">
  <link rel="stylesheet" type="text/css" href="{static}/{version}/index.css">
  <link rel="icon" type="image/png" href="{static}/{version}/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="{static}/{version}/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/{version}/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script>
    window.onload = function () {{
      window.ui = SwaggerUIBundle({{
        url: "{spec}", dom_id: "#swagger-ui", deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
      }});
    }};
  </script>
</body>
</html>
"""

Asset = tuple[bytes, bytes, str]  # raw, gzip-compressed, content type


def read_and_compress(directory: str, names: tuple[str, ...]) -> dict[str, Asset]:
    """Runs in a worker process."""
    found = {}
    for name in names:
        raw = (Path(directory) / name).read_bytes()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        found[name] = (raw, gzip.compress(raw, compresslevel=9, mtime=0), content_type)
    return found


_LOADED: dict[str, Asset] = {}  # the same files for every app in the process


class DocsAssets:
    """The assets, loaded on first use."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> Asset:
        if name not in ASSETS:
            raise NotFound(f"Not found: {name}")
        async with self._lock:
            if not _LOADED:
                pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
                try:
                    _LOADED.update(await asyncio.get_running_loop().run_in_executor(
                        pool, read_and_compress, str(SWAGGER_UI_STATIC_FILES), ASSETS))
                finally:
                    pool.shutdown(wait=False)
        return _LOADED[name]


def setup_docs_page(app: web.Application, *, docs_path: str, static_path: str,
                    spec_path: str) -> None:
    page = PAGE.format(static=static_path, spec=spec_path, version=VERSION).encode()
    assets = DocsAssets()

    async def docs(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def asset(request: web.Request) -> web.Response:
        if request.match_info["version"] != VERSION:
            raise NotFound(f"Not found: {request.path}")
        raw, compressed, content_type = await assets.get(request.match_info["name"])
        # The version is in the path, so a cached copy never goes stale.
        headers = {"Cache-Control": f"public, max-age={CACHE_SECONDS}, immutable",
                   "ETag": f'"{VERSION}-{len(raw)}"', "Vary": "Accept-Encoding"}
        if request.headers.get("If-None-Match") == headers["ETag"]:
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            raw = compressed
        return web.Response(body=raw, content_type=content_type, headers=headers)

    encoded: list[tuple[bytes, bytes]] = []  # the document, built at startup, never changes

    async def document(request: web.Request) -> web.Response:
        if not encoded:
            # ~80 KB of JSON that compresses 6:1: done once, a few milliseconds.
            raw = dumps(request.app[SWAGGER_DICT])
            encoded.append((raw, gzip.compress(raw, compresslevel=6, mtime=0)))
        raw, compressed = encoded[0]
        headers = {"Vary": "Accept-Encoding", "Cache-Control": "no-cache"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            raw = compressed
        return web.Response(body=raw, content_type="application/json", headers=headers)

    app.router.add_get(spec_path, document)
    app.router.add_get(docs_path, docs)
    app.router.add_get(static_path + "/{version}/{name}", asset)

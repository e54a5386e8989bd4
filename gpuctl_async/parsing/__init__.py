"""Parsing gpuctl YAML documents and large JSON bodies without holding the event loop.

Small documents (every real job document) and bodies are parsed in line: the bounds in
``gpuctl_async.documents.parser`` and ``gpuctl_async.api.json_body`` cap what they can cost at a few
milliseconds. Larger ones go to a small process pool (a process, not a thread: parsing is
CPU work under the GIL), at most ``yaml_workers`` at a time; one that runs past
``yaml_parse_timeout`` has its worker killed and the pool is built afresh for the next one.
A refused JSON body never travels back from the worker, only the reason.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from typing import Any
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from aiohttp import web

from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.api.json_body import decode_json_body, decode_outcome
from gpuctl_async.errors import BadRequest, Unavailable, ValidationFailed
from gpuctl_async.documents import ALL_KINDS, ParsedDocument, parse_document
from gpuctl_async.documents.hostpaths import SYSTEM_DIRECTORIES_ONLY, HostPathPolicy
from gpuctl_async.documents.parser import TEXT_FIELD, parse_outcome

log = logging.getLogger(__name__)

INLINE_BYTES = 4096
"""Documents up to this size are parsed on the loop (≤ ~3 ms within the node bound)."""
INLINE_JSON_BYTES = 64 * 1024
"""JSON bodies up to this size are decoded on the loop; a 1 MB body of 400,000 numbers takes
orjson 6 ms, so larger ones are decoded (and checked) in a worker."""


class DocumentParser:
    """``await parser.parse(text)``: a validated document or ``ValidationFailed``."""

    def __init__(self, *, workers: int, timeout: float):
        self.workers = workers
        self.timeout = timeout
        self._slots = asyncio.Semaphore(workers)
        self._pool: ProcessPoolExecutor | None = None

    async def parse(self, text: object, *, allowed_kinds: Iterable[str] = ALL_KINDS,
                    host_paths: HostPathPolicy = SYSTEM_DIRECTORIES_ONLY) -> ParsedDocument:
        kinds = tuple(allowed_kinds)
        if not isinstance(text, str) or len(text) <= INLINE_BYTES:
            return parse_document(text, allowed_kinds=kinds,  # type: ignore[arg-type]
                                  host_paths=host_paths)
        async with self._slots:  # the timeout counts from when a worker takes it
            outcome = await self._run(text, kinds, host_paths)
        if isinstance(outcome, ParsedDocument):
            return outcome
        summary, details = outcome
        raise ValidationFailed(summary, details=details)

    async def decode_json(self, raw: bytes) -> Any:
        """A request body through ``decode_json_body``, in a worker when it is large."""
        if len(raw) <= INLINE_JSON_BYTES:
            return decode_json_body(raw)
        async with self._slots:
            ok, value = await self._call(decode_outcome, raw)
        if not ok:
            raise BadRequest(value)
        return value

    async def _run(self, text: str, kinds: tuple[str, ...], host_paths: HostPathPolicy):
        return await self._call(parse_outcome, text, kinds, host_paths)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._pool or self._start()
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(pool, function, *args), self.timeout)
            except asyncio.TimeoutError:
                log.warning("A request took over %.1fs to parse; restarting the parser workers",
                            self.timeout)
                self._kill(pool)
                if function is decode_outcome:
                    raise BadRequest(f"Request body refused: took longer than "
                                     f"{self.timeout:g}s to decode") from None
                raise ValidationFailed(
                    "YAML document too complex", details={TEXT_FIELD: [
                        f"took longer than {self.timeout:g}s to parse"]}) from None
            except BrokenProcessPool:
                # Killed for another document's timeout while this one ran: once more.
                self._kill(pool)
                if attempt == 2:
                    log.warning("The YAML parser workers failed twice in a row")
                    raise Unavailable("The YAML parser workers failed; try again") from None
        raise AssertionError("unreachable")

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the service has threads (the pool's own manager among them), and
        # forking a threaded process is unsafe.
        self._pool = ProcessPoolExecutor(self.workers,
                                         mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        # ProcessPoolExecutor has no public way to stop a running task (3.14 adds
        # kill_workers()); its worker processes are in ``_processes``.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)


DOCUMENT_PARSER = web.AppKey("document_parser", DocumentParser)


def setup_document_parsing(app: web.Application) -> None:
    """Give the app a :class:`DocumentParser` for its lifetime (``app[DOCUMENT_PARSER]``);
    call before anything whose cleanup context uses it."""

    async def parser_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        parser = DocumentParser(workers=settings.yaml_workers,
                                timeout=settings.yaml_parse_timeout)
        app[DOCUMENT_PARSER] = parser
        try:
            yield
        finally:
            parser.close()

    app.cleanup_ctx.append(parser_ctx)

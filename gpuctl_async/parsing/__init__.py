"""Parsing gpuctl YAML documents and large JSON bodies without holding the event loop.

Small documents (most real job documents) and bodies are parsed in line: the bounds in
``gpuctl_async.documents.parser`` and ``gpuctl_async.api.json_body`` cap what they can cost at a few
milliseconds. Larger ones go to a small process pool (a process, not a thread: parsing is
CPU work under the GIL), at most ``yaml_workers`` at a time; one that runs past
``yaml_parse_timeout`` has its worker killed and the pool is built afresh for the next one.
A refused JSON body never travels back from the worker, only the reason.

Reads come first: a request with a body over :data:`LARGE_BODY_BYTES` (or of unknown length)
is only read once one of ``yaml_workers`` body slots is free (:func:`large_body_middleware`).
The others wait without reading, so aiohttp stops reading their sockets, and the loop's time
goes to the GETs between them instead of to eight 1 MB uploads at once. The workers run at a
lower CPU priority (:data:`WORKER_NICENESS`) than the service, for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from typing import Any
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.api.json_body import decode_json_body, decode_outcome
from gpuctl_async.errors import BadRequest, Unavailable, ValidationFailed
from gpuctl_async.documents import ALL_KINDS, ParsedDocument, parse_document
from gpuctl_async.documents.hostpaths import SYSTEM_DIRECTORIES_ONLY, HostPathPolicy
from gpuctl_async.documents.parser import TEXT_FIELD, parse_outcome
from gpuctl_async.passthrough import PassThrough

log = logging.getLogger(__name__)

INLINE_BYTES = 1024
"""Documents up to this size are parsed on the loop: PyYAML builds ~4 us a node even with
libyaml, so 1 KiB (≤ ~500 nodes) costs at most ~2 ms, a typical job document well under
1 ms; a 4 KiB list of 1,300 items cost 6 ms of the loop."""
INLINE_JSON_BYTES = 64 * 1024
"""JSON bodies up to this size are decoded on the loop; a 1 MB body of 400,000 numbers takes
orjson 6 ms, so larger ones are decoded (and checked) in a worker."""
LARGE_BODY_BYTES = INLINE_JSON_BYTES
"""Requests with a body over this (or chunked, length unknown) take a body slot first."""
WORKER_NICENESS = 10
"""Added to the parser workers' nice value: the event loop wins the CPU from a parse."""
_WITH_BODY = frozenset({hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_PATCH})


def _worker_start() -> None:
    """Each worker's initializer: lower its priority, so the event loop wins the CPU."""
    os.nice(WORKER_NICENESS)


class DocumentParser:
    """``await parser.parse(text)``: a validated document or ``ValidationFailed``."""

    def __init__(self, *, workers: int, timeout: float):
        self.workers = workers
        self.timeout = timeout
        self._slots = asyncio.Semaphore(workers)
        self._inline_turn = asyncio.Lock()
        self.body_slots = asyncio.Semaphore(workers)
        """Held while a large request body is read and handled (``large_body_middleware``)."""
        self._pool: ProcessPoolExecutor | None = None

    async def parse(self, text: object, *, allowed_kinds: Iterable[str] = ALL_KINDS,
                    host_paths: HostPathPolicy = SYSTEM_DIRECTORIES_ONLY) -> ParsedDocument:
        kinds = tuple(allowed_kinds)
        if not isinstance(text, str) or len(text) <= INLINE_BYTES:
            # One document a loop step, whoever asks: a batch parsing several at once must not
            # hold the loop for all of them (waiters of a Lock wake one a step, in order).
            async with self._inline_turn:
                await asyncio.sleep(0)
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
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_worker_start)
        return self._pool

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        """Stop ``pool`` now, its running tasks too."""
        if self._pool is pool:
            self._pool = None
        # Python 3.11 has no public way to stop a running task (3.14 adds kill_workers();
        # shutdown(cancel_futures=True) only drops queued ones), so the pool's private
        # ``_processes`` is read. Workers reporting their pids through a queue instead missed
        # workers still starting, and a test process then hung at exit in the pool's join.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)


DOCUMENT_PARSER = web.AppKey("document_parser", DocumentParser)


@web.middleware
def large_body_middleware(request: web.Request, handler: Handler) -> PassThrough:
    """A large body is read and handled holding one of the parser's body slots; waiting
    for one costs the loop nothing (the body stays in the socket), and a request that
    waits longer than ``yaml_parse_timeout`` is answered 503. Other requests pass through
    (``gpuctl_async.passthrough``)."""
    length = request.content_length
    if request.method not in _WITH_BODY or (length is not None and length <= LARGE_BODY_BYTES):
        return handler(request)
    return _with_body_slot(request, handler)


async def _with_body_slot(request: web.Request, handler: Handler) -> web.StreamResponse:
    parser = request.app[DOCUMENT_PARSER]
    try:
        async with asyncio.timeout(parser.timeout):
            await parser.body_slots.acquire()
    except TimeoutError:
        raise Unavailable(f"Too many large request bodies are being handled; waited "
                          f"{parser.timeout:g}s, try again") from None
    try:
        return await handler(request)
    finally:
        parser.body_slots.release()


def setup_document_parsing(app: web.Application) -> None:
    """Give the app a :class:`DocumentParser` for its lifetime (``app[DOCUMENT_PARSER]``)
    and the middleware that admits large bodies a few at a time. Call after the rate-limit
    and authentication middlewares (an anonymous flood must not hold the slots) and before
    anything that reads the body (validation), and before anything whose cleanup context
    uses the parser."""
    app.middlewares.append(large_body_middleware)

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

"""Parsing gpuctl YAML documents and large JSON bodies without holding the event loop.

Small documents (most real job documents) and bodies are parsed in line: the bounds in
``gpuctl_async.documents.parser`` and ``gpuctl_async.api.json_body`` cap what they can cost at a few
milliseconds. Larger ones go to worker processes (a process, not a thread: parsing is
CPU work under the GIL), at most ``yaml_workers`` of them, each spoken to over its own pipes
from the event loop (:class:`WorkerProcess`); one that runs past ``yaml_parse_timeout`` is
killed, and the next call starts a fresh one. A refused JSON body never travels back from
the worker, only the reason.

Reads come first: a request with a body over :data:`LARGE_BODY_BYTES` (or of unknown length)
is only read once one of ``yaml_workers`` body slots is free (:func:`large_body_middleware`).
The others wait without reading, so aiohttp stops reading their sockets, and the loop's time
goes to the GETs between them instead of to eight 1 MB uploads at once. The workers run
below the service's CPU priority (Linux's idle policy,
:func:`gpuctl_async.parser_worker.yield_the_cpu`), for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import sys
from typing import Any
from collections.abc import AsyncIterator, Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.api.json_body import decode_json_body
from gpuctl_async.errors import BadRequest, Unavailable, ValidationFailed
from gpuctl_async.documents import ALL_KINDS, ParsedDocument, parse_document
from gpuctl_async.documents.hostpaths import SYSTEM_DIRECTORIES_ONLY, HostPathPolicy
from gpuctl_async.documents.parser import TEXT_FIELD
from gpuctl_async.parser_worker import HEADER_BYTES, READY, frame
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
STARTUP_TIMEOUT = 60.0
"""Seconds a new worker may take to start (import the parser) before it is given up; not
counted in ``yaml_parse_timeout``."""
_WITH_BODY = frozenset({hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_PATCH})


class WorkerProcess:
    """One parser worker (:mod:`gpuctl_async.parser_worker`), spoken to over its own stdin
    and stdout by the event loop: one call at a time, no threads, and killing it touches no
    other worker. (A ``ProcessPoolExecutor`` shares one answer pipe among its workers: a
    worker killed mid-answer left its manager thread blocked on the half-written answer
    for good, and the interpreter hung at exit joining it. Its manager and feeder threads
    also took the GIL from the loop for each 1 MB body they pickled.)"""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process

    @classmethod
    async def start(cls) -> WorkerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gpuctl_async.parser_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        worker = cls(process)
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                ready = await process.stdout.readexactly(len(READY))  # type: ignore[union-attr]
            if ready != READY:
                raise ConnectionError("the parser worker said something else than ready")
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def call(self, name: str, *args: Any) -> Any:
        """``FUNCTIONS[name](*args)`` in the worker; what it returned."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(frame((name, args)))  # a large body drains a pipe's worth a loop step
        await stdin.drain()
        size = int.from_bytes(await stdout.readexactly(HEADER_BYTES), "big")
        ok, value = pickle.loads(await stdout.readexactly(size))
        if not ok:
            raise RuntimeError(value)  # a bug in the worker: a 500, logged
        return value

    async def kill(self) -> None:
        """Stop it now (SIGKILL), mid-call or not, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        # communicate(), not wait(): on Python 3.11 wait() returns only once every pipe is
        # closed, and a pipe whose reader stopped mid-answer (full buffer) never reads EOF.
        await asyncio.shield(self.process.communicate())


class DocumentParser:
    """``await parser.parse(text)``: a validated document or ``ValidationFailed``."""

    def __init__(self, *, workers: int, timeout: float):
        self.workers = workers
        self.timeout = timeout
        self._slots = asyncio.Semaphore(workers)
        self._inline_turn = asyncio.Lock()
        self.body_slots = asyncio.Semaphore(workers)
        """Held while a large request body is read and decoded (``large_body_middleware``)."""
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()

    @property
    def worker_pids(self) -> list[int]:
        """The worker processes running now, idle or busy (started as they are needed)."""
        return [w.process.pid for w in [*self._idle, *self._busy]]

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
            outcome = await self._call("parse", text, kinds, host_paths)
        if isinstance(outcome, ParsedDocument):
            return outcome
        summary, details = outcome
        raise ValidationFailed(summary, details=details)

    async def decode_json(self, raw: bytes) -> Any:
        """A request body through ``decode_json_body``, in a worker when it is large."""
        if len(raw) <= INLINE_JSON_BYTES:
            return decode_json_body(raw)
        async with self._slots:
            ok, value = await self._call("decode", raw)
        if not ok:
            raise BadRequest(value)
        return value

    async def _call(self, name: str, *args: Any) -> Any:
        """Run a call in an idle worker (started if none is; at most ``workers``, as each
        caller holds one of ``_slots``); kill the worker if the call takes too long."""
        for attempt in (1, 2):
            worker = self._idle.pop() if self._idle else await self._start()
            self._busy.add(worker)
            try:
                async with asyncio.timeout(self.timeout):
                    value = await worker.call(name, *args)
            except TimeoutError:
                log.warning("A request took over %.1fs to parse; killing its parser worker",
                            self.timeout)
                await self._kill(worker)
                if name == "decode":
                    raise BadRequest(f"Request body refused: took longer than "
                                     f"{self.timeout:g}s to decode") from None
                raise ValidationFailed(
                    "YAML document too complex", details={TEXT_FIELD: [
                        f"took longer than {self.timeout:g}s to parse"]}) from None
            except (asyncio.IncompleteReadError, ConnectionError):
                # The worker died under it (killed from outside, out of memory): once more.
                await self._kill(worker)
                if attempt == 2:
                    log.warning("The YAML parser workers failed twice in a row")
                    raise Unavailable("The YAML parser workers failed; try again") from None
            except BaseException:
                # Cancelled (or a worker bug) mid-call: what is left in its pipes is unknown.
                await self._kill(worker)
                raise
            else:
                self._busy.discard(worker)
                self._idle.append(worker)
                return value
        raise AssertionError("unreachable")

    async def _start(self) -> WorkerProcess:
        try:
            return await WorkerProcess.start()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.warning("A YAML parser worker did not start: %s", type(exc).__name__)
            raise Unavailable("The YAML parser workers failed; try again") from None

    async def _kill(self, worker: WorkerProcess) -> None:
        self._busy.discard(worker)
        await worker.kill()

    async def close(self) -> None:
        """Stop every worker (a call still running is killed with its worker)."""
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        for worker in workers:
            await worker.kill()


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
            await parser.close()

    app.cleanup_ctx.append(parser_ctx)

"""A parser worker process: ``python -m gpuctl_async.parser_worker``.

It reads calls from stdin and writes their results to stdout, one at a time, each a pickle
behind an 8-byte length: ``(function name, args)`` in, ``(True, result)`` or ``(False,
reason)`` out. The service speaks to each worker over that worker's own pipes from its event
loop (:class:`gpuctl_async.parsing.WorkerProcess`), so killing one mid-answer leaves nothing
half-written in a pipe that another worker shares, and the service needs no threads for it.

It lives outside :mod:`gpuctl_async.parsing` so that a worker imports the parser only (about
0.3 s), not the service (aiohttp, the Kubernetes client: a second more).
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from gpuctl_async.api.json_body import decode_outcome
from gpuctl_async.documents.parser import parse_outcome

READY = b"gpuctl-parser-ready\n"
"""Written once the imports are done: a call's timeout counts from there, not from exec."""
HEADER_BYTES = 8
WORKER_NICENESS = 19
"""Added to the worker's nice value, where the idle policy cannot be had (see
:func:`yield_the_cpu`)."""
FUNCTIONS: dict[str, Callable[..., Any]] = {"parse": parse_outcome, "decode": decode_outcome}


def frame(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(HEADER_BYTES, "big") + data


def serve(calls: BinaryIO, answers: BinaryIO) -> None:
    """Answer calls until stdin ends (the service closed it or went away)."""
    answers.write(READY)
    answers.flush()
    while header := calls.read(HEADER_BYTES):
        name, args = pickle.loads(calls.read(int.from_bytes(header, "big")))
        try:
            answer = (True, FUNCTIONS[name](*args))
        except Exception as exc:  # a bug, not a bad document: the service answers 500
            answer = (False, f"{type(exc).__name__} in the parser worker")
        answers.write(frame(answer))
        answers.flush()


def yield_the_cpu() -> None:
    """Run below the service: Linux's ``SCHED_IDLE`` policy (a CPU weight of 3 against the
    service's 1,024, and a woken service preempts the worker at once), else the lowest nice
    value. At nice +10 the scheduler let a busy worker finish its slice first: under eight
    clients sending 1 MB documents the job list's p99 went from 1.1 to 3.8 ms; idle, 1.9 ms
    (``bench/hostile_input.py``). Not a starvation: the worker still gets CPU on a busy
    machine, slowly, and ``yaml_parse_timeout`` bounds the wait."""
    os.nice(WORKER_NICENESS)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        pass


def main() -> None:
    yield_the_cpu()
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the answer pipe
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()

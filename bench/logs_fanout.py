"""Log fan-out: many WebSocket clients on few containers, through the service, against the sim.

Starts the simulated cluster and the service as two subprocesses (so the service's CPU and
memory are its own), makes ``--pods`` running pods each logging ``--rate`` lines a second,
connects ``--clients`` WebSocket clients spread evenly over the pods, and reads for
``--seconds``. Prints: upstream log streams open at the sim, per-client delivery (no loss,
no duplicate, in order), p50/p99 delay from a line's timestamp to its receipt, the
service's RSS growth per connection and its CPU. Then, with ``--normal`` reading clients,
adds ``--silent`` clients that never read and compares the reading clients' p99 before and
after.

With ``--multiplex``, ``--mux-sockets`` multiplexed sockets (``/api/v1/stream``) of
``--subscriptions`` log subscriptions each join the plain clients in the same run (after
them, so that their memory is measured apart): memory per subscription, their loss and
delay beside the plain clients', the service's CPU with both.

It prints progress as it goes (each phase's start, sockets connected so far and how fast,
the memory figures as soon as they are measured), so a long run shows where it is; a
socket that cannot be opened, or a client process that fails, stops the run with the
reason (and the service's last log lines) instead of leaving it waiting.

    python bench/logs_fanout.py                # 20 pods x 20 lines/s, 2000 clients, 30 s
    python bench/logs_fanout.py --clients 200 --seconds 5   # a quick look
    python bench/logs_fanout.py --multiplex --pods 50 --rate 10 --clients 10000 \\
        --mux-sockets 500 --subscriptions 20 --workers 4 --normal 0   # issue 18's full size
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import orjson

from gpuctl_async.logs.lines import parse_ts
from gpuctl_async.sim.logs import RATE_ANNOTATION
from measure import cpu_seconds, free_port, percentile, rss_bytes

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
CONNECTING = 100
"""Handshakes in flight at once, over all processes: below the service's listen backlog,
else the kernel drops SYNs and each dropped one costs its client 1, 3, 7, 15 s of TCP
retransmits (``ListenOverflows`` in /proc/net/netstat): the slow, stalling connect of
larger runs."""
CONNECT_TIMEOUT = 120.0
"""Seconds one socket (or one multiplexed socket's subscriptions) may take to be ready
before the run stops with what went wrong, instead of waiting forever."""
PROGRESS_EVERY = 5.0
"""Seconds between two progress lines of one long phase."""
STARTED = time.time()
"""When the run started (the client processes are given the main process's)."""


def progress(message: str, who: str = "main") -> None:
    """One progress line, at once (a long run must show where it is, and where it stalls)."""
    print(f"[{time.time() - STARTED:7.1f} s {who}] {message}", flush=True)


class Stopped(Exception):
    """The run cannot go on (a socket that cannot be opened or made ready, a client process
    that failed): it stops and says why."""


async def until_ready(ready: asyncio.Event, task: asyncio.Task, what: str) -> None:
    """Wait until ``ready`` is set; fail at once if ``task`` ends first (a refused or
    failed connection would otherwise leave this waiting forever), or after
    :data:`CONNECT_TIMEOUT`."""
    waiter = asyncio.ensure_future(ready.wait())
    try:
        await asyncio.wait({waiter, task}, timeout=CONNECT_TIMEOUT,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if ready.is_set():
        return
    if task.done():
        error = None if task.cancelled() else task.exception()
        raise Stopped(f"{what}: {error!r}" if error else f"{what}: closed at once")
    raise Stopped(f"{what}: not ready after {CONNECT_TIMEOUT:g} s")


class Counter:
    """Counts what a phase has done and prints it every :data:`PROGRESS_EVERY` seconds."""

    def __init__(self, label: str, total: int, who: str):
        self.label, self.total, self.who = label, total, who
        self.done = 0
        self.started = self.last = time.monotonic()

    def add(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.done == self.total or now - self.last >= PROGRESS_EVERY:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            progress(f"{self.label}: {self.done}/{self.total} ({rate:.0f}/s)", self.who)

    def out_of_time(self, deadline: float | None) -> None:
        if self.done < self.total and deadline is not None:
            progress(f"{self.label}: the connect budget ran out with {self.done} of "
                     f"{self.total} open: measuring with those", self.who)


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (``/proc/stat``): other
    processes' share of the cores shows up here and nowhere else."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


async def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise Stopped(f"{url} did not answer 200 within {timeout} s")
            await asyncio.sleep(0.1)


class Client:
    """One reading WebSocket client: checks order and counts, measures delays."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.count = 0
        self.disorder = 0
        self.delays: list[float] = []
        self.measuring = False
        self.dropped = 0

    def take(self, line: dict, now_ns: int) -> None:
        seq = int(line["data"].rsplit(" ", 1)[1])
        if self.last is not None and seq != self.last + 1:
            self.disorder += 1
        if self.first is None:
            self.first = seq
        self.last = seq
        self.count += 1
        if self.measuring:
            self.delays.append((now_ns - parse_ts(line["ts"])) / 1e6)

    def handle(self, frame: dict, now_ns: int) -> None:
        """Account one log socket frame (``log``, ``logs`` or ``dropped``)."""
        if frame["type"] == "log":
            self.take(frame, now_ns)
        elif frame["type"] == "logs":
            for line in frame["lines"]:
                self.take(line, now_ns)
        elif frame["type"] == "dropped":
            self.dropped += frame["count"]

    async def run(self, session: aiohttp.ClientSession, url: str, ready: asyncio.Event,
                  connected: list, live: bool = False) -> None:
        """Read the socket; ``ready`` once open, or with ``live`` once its first line came
        (its tail read and its stream followed: what the measuring counts on)."""
        async with session.ws_connect(url, params={"tail": "1", "timestamps": "false"},
                                      heartbeat=None) as ws:
            connected.append(self)
            if not live:
                ready.set()
            async for message in ws:
                self.handle(orjson.loads(message.data), time.time_ns())
                if self.count:
                    ready.set()


async def mux_socket(session: aiohttp.ClientSession, url: str, pods: list[str],
                     subscriptions: int, offset: int, ready: asyncio.Event,
                     connected: list, live: bool = False) -> None:
    """One multiplexed socket with ``subscriptions`` log subscriptions, a Client each;
    ``ready`` once every subscription is answered (``subscribed`` or ``error``), or with
    ``live`` once each has had its first line or an error."""
    async with session.ws_connect(url, heartbeat=None) as ws:
        clients: dict[str, Client] = {}
        for index in range(subscriptions):
            sub_id = f"s{index}"
            clients[sub_id] = Client()
            await ws.send_str(orjson.dumps({"op": "subscribe", "id": sub_id, "logs": {
                "jobId": pods[(offset + index) % len(pods)], "tail": 1,
                "timestamps": False}}).decode())
        connected.extend(clients.values())
        waiting = set(clients)  # not answered yet (not live yet, with live)
        async for message in ws:
            frame = orjson.loads(message.data)
            client = clients.get(frame.get("id"))
            if client is None:
                continue
            if frame["type"] == "error":
                client.disorder += 1  # counted as not lossless
                progress(f"subscription refused: {frame}")
            elif frame["type"] != "subscribed":
                client.handle(frame, time.time_ns())
            if waiting and (frame["type"] == "error" or client.count
                            or (frame["type"] == "subscribed" and not live)):
                waiting.discard(frame["id"])
                if not waiting:
                    ready.set()


async def connect_mux(session, url: str, pods: list[str], sockets: int, subscriptions: int,
                      connected: list, tasks: list, offset: int = 0, *,
                      label: str = "multiplexed sockets", who: str = "main",
                      concurrency: int = 10, deadline: float | None = None,
                      live: bool = False) -> float:
    """Open ``sockets`` multiplexed sockets, ``concurrency`` at a time, each ready as
    :func:`mux_socket` says. None opened past ``deadline`` (monotonic). Seconds taken."""
    started = time.monotonic()
    limit = asyncio.Semaphore(concurrency)
    counter = Counter(label, sockets, who)

    async def one(index: int) -> None:
        async with limit:
            if deadline is not None and time.monotonic() > deadline:
                return
            ready = asyncio.Event()
            task = asyncio.create_task(mux_socket(
                session, url, pods, subscriptions, offset + index * subscriptions, ready,
                connected, live))
            tasks.append(task)
            await until_ready(ready, task, f"multiplexed socket {index}")
            counter.add()

    await asyncio.gather(*(one(index) for index in range(sockets)))
    counter.out_of_time(deadline)
    return time.monotonic() - started


def _seen(clients: list[Client]) -> list[tuple]:
    return [(c.count, c.first, c.last, c.disorder, c.dropped, c.delays) for c in clients]


def _deadline(budget: float | None) -> float | None:
    return None if budget is None else time.monotonic() + budget


def client_worker(index: int, workers: int, started: float, budget: float | None,
                  urls: list[str], count: int, mux: tuple, pipe) -> None:
    """A process holding ``count`` reading clients (one process cannot parse every frame of
    2,000 clients on time), then, when told ``"mux"``, its multiplexed sockets (``mux``: url,
    pods, sockets, subscriptions each, offset); it measures when told to and sends back
    what each plain client and each subscription saw. Each connect phase stops opening
    sockets after ``budget`` seconds (None: no limit) and answers (seconds taken, sockets or
    subscriptions open). What goes wrong is sent back as ``("error", message)`` (the main
    process stops the run with it)."""
    global STARTED
    STARTED = started  # progress lines count from the main process's start
    who = f"worker {index}"

    async def work() -> None:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            clients: list[Client] = []
            subscribed: list[Client] = []
            # The handshakes in flight are shared out: all processes connect at once.
            took = await connect(session, urls, count, clients, tasks, who=who,
                                 concurrency=max(1, CONNECTING // workers),
                                 deadline=_deadline(budget), live=True)
            pipe.send((took, len(clients)))
            while (command := await loop.run_in_executor(None, pipe.recv)) != "stop":
                if command == "mux":
                    url, pods, sockets, subscriptions, offset = mux
                    took = await connect_mux(session, url, pods, sockets, subscriptions,
                                             subscribed, tasks, offset, who=who,
                                             concurrency=max(1, 10 // workers),
                                             deadline=_deadline(budget), live=True)
                    pipe.send((took, len(subscribed)))
                    continue
                progress(f"measuring {len(clients)} sockets and {len(subscribed)} "
                         f"subscriptions for {command:g} s", who)
                await measure(clients + subscribed, command)
                pipe.send((_seen(clients), _seen(subscribed)))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(work())
    except Exception as exc:  # told to the main process, which stops the run with it
        pipe.send(("error", f"{who}: {exc!r}"))



async def connect(session, urls: list[str], count: int, connected: list, tasks: list, *,
                  label: str = "plain sockets", who: str = "main",
                  concurrency: int = CONNECTING, deadline: float | None = None,
                  live: bool = False) -> float:
    """Open ``count`` plain log sockets over ``urls``, ``concurrency`` at a time, none past
    ``deadline`` (monotonic), each ready as :meth:`Client.run` says. Seconds taken; Stopped
    with the first failure."""
    started = time.monotonic()
    limit = asyncio.Semaphore(concurrency)
    counter = Counter(label, count, who)

    async def one(index: int) -> None:
        async with limit:
            if deadline is not None and time.monotonic() > deadline:
                return
            ready = asyncio.Event()
            client = Client()
            task = asyncio.create_task(client.run(session, urls[index % len(urls)], ready,
                                                  connected, live))
            tasks.append(task)
            await until_ready(ready, task, f"plain socket {index}")
            counter.add()

    await asyncio.gather(*(one(index) for index in range(count)))
    counter.out_of_time(deadline)
    return time.monotonic() - started


async def silent_client(url: str, sockets: list) -> None:
    """A client that connects and then never reads (small socket buffer, reading paused)."""
    def small(addr_info):
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return sock
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=small))
    ws = await session.ws_connect(url, params={"tail": "1"}, autoping=False)
    ws._conn.transport.pause_reading()
    sockets.append((session, ws))


QUIET_RATE = 0.01
"""Lines per second of the memory sample's pods: nothing waits to be sent to their sockets."""


async def memory_sample(session: aiohttp.ClientSession, pid: int, urls: list[str],
                        mux_url: str, quiet: list[str], plain: int, mux_sockets: int,
                        subscriptions: int, tasks: list) -> tuple[float, float | None]:
    """The service's RSS per plain socket and per subscription, in bytes: the growth from
    ``plain`` more sockets (then ``mux_sockets`` x ``subscriptions``) on pods that write
    almost nothing, after a warm-up, before any traffic. That is what a socket itself costs:
    the RSS growth of the loaded run also holds output waiting in user space for clients
    that lag (on this machine the client processes do: it is theirs, bounded by
    ``log_queue_lines``), and one-off costs (first requests, the upstream streams) divided
    by the sockets."""
    held: list[Client] = []
    progress("memory sample: warming up")
    await connect(session, urls, 20, held, tasks, label="memory sample, warm-up")
    if mux_sockets:
        await connect_mux(session, mux_url, quiet, 1, subscriptions, held, tasks,
                          label="memory sample, warm-up")
    await asyncio.sleep(1.0)
    before = rss_bytes(pid)
    await connect(session, urls, plain, held, tasks, label="memory sample, plain sockets")
    await asyncio.sleep(1.0)
    middle = rss_bytes(pid)
    per_plain = (middle - before) / plain
    progress(f"memory per plain socket: {per_plain / 1024:.1f} KiB (target <= 20)")
    per_sub = None
    if mux_sockets:
        # One socket at a time: RSS keeps its high-water mark, and subscriptions starting
        # side by side would count what they hold while starting as what they keep.
        await connect_mux(session, mux_url, quiet, mux_sockets, subscriptions, held, tasks,
                          label="memory sample, multiplexed sockets", concurrency=1)
        await asyncio.sleep(1.0)
        per_sub = (rss_bytes(pid) - middle) / (mux_sockets * subscriptions)
        progress(f"memory per subscription: {per_sub / 1024:.2f} KiB (target <= 4)")
    return per_plain, per_sub


async def make_pods(sim_url: str, pods: int, rate: float, prefix: str = "bench") -> list[str]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    names = []
    async with aiohttp.ClientSession(base_url=sim_url) as session:
        for i in range(pods):
            name = f"{prefix}-{i:02d}"
            labels = {"runwhere.ai/job-type": "training", "runwhere.ai/job-name": name}
            body = {"metadata": {"name": name, "labels": labels,
                                 "annotations": {RATE_ANNOTATION: str(rate)}},
                    "spec": {"nodeName": "bench-node",
                             "containers": [{"name": "main", "image": "busybox:1.36"}]}}
            async with session.post("/api/v1/namespaces/default/pods", json=body) as resp:
                assert resp.status == 201, await resp.text()
            status = {"status": {"phase": "Running", "containerStatuses": [{
                "name": "main", "image": "busybox:1.36", "ready": True, "restartCount": 0,
                "state": {"running": {"startedAt": now}}}]}}
            async with session.patch(f"/api/v1/namespaces/default/pods/{name}/status",
                                     data=orjson.dumps(status),
                                     headers={"Content-Type": "application/merge-patch+json"}
                                     ) as resp:
                assert resp.status == 200, await resp.text()
            names.append(name)
    return names


async def sim_counters(sim_url: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim_url}/_sim/counters") as resp:
            return await resp.json()


def report_clients(clients: list[Client], seconds: float, rate: float) -> dict:
    expected = [c.last - c.first + 1 for c in clients if c.first is not None]
    lossless = sum(1 for c in clients if c.first is not None
                   and c.count == c.last - c.first + 1 and not c.disorder and not c.dropped)
    delays = [d for c in clients for d in c.delays]
    return {"clients": len(clients), "lossless_in_order": lossless,
            "lines_delivered_per_client": statistics.mean(c.count for c in clients),
            "lines_written_per_client": statistics.mean(expected) if expected else 0,
            "expected_in_window": seconds * rate,
            "p50_ms": percentile(delays, 0.50), "p99_ms": percentile(delays, 0.99),
            "max_ms": max(delays, default=float("nan"))}


async def measure(clients: list[Client], seconds: float) -> None:
    for client in clients:
        client.delays.clear()
        client.measuring = True
    await asyncio.sleep(seconds)  # the measuring window itself
    for client in clients:
        client.measuring = False


def file_limit(args: argparse.Namespace) -> None:
    """Raise this process's open-file limit to its hard limit (the service, the sim and the
    client processes inherit it) and stop at once if a process would still run out: a
    socket refused for want of a descriptor would otherwise show as a stall."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mux_sockets = args.mux_sockets if args.multiplex else 0
    sample = args.memory_sample + 20 + (2 * args.memory_sample // args.subscriptions + 1
                                        if args.multiplex else 0)
    spare = 200  # upstream log streams, reads of the tails, the sim's own
    needs = {"the service": args.clients + mux_sockets + sample + args.probes + 1 + spare,
             "each client process": -(-args.clients // args.workers)
             + -(-mux_sockets // args.workers) + spare,
             "this process": sample + args.probes + 1 + spare}
    progress("open files needed: " + ", ".join(f"{who} ~{n}" for who, n in needs.items())
             + f"; limit {hard} per process")
    over = [who for who, n in needs.items() if n > hard]
    if over:
        raise SystemExit(f"{' and '.join(over)} would need more than {hard} open files "
                         f"(ulimit -Hn): use fewer sockets, or more --workers")


class Workers:
    """The client processes and their pipes; each answer is checked for a reported error
    or a dead process, so that the run stops with the reason instead of waiting."""

    def __init__(self, count: int, budget: float | None):
        self.count = count
        self.budget = budget
        self.pipes: list = []
        self.processes: list[multiprocessing.Process] = []
        # A thread per pipe waiting on it: the default pool has fewer than 8 threads.
        self.executor = ThreadPoolExecutor(max_workers=count + 1, thread_name_prefix="pipe")
        self.stopped = False

    def start(self, *args) -> None:
        # spawn, not fork: a forked child would inherit this process's running loop and its
        # open sockets (the memory sample's), and keep them open after this one closes them.
        mine, theirs = multiprocessing.Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=client_worker, args=(len(self.processes), self.count, STARTED, self.budget,
                                        *args, theirs),
            daemon=True)
        process.start()
        self.pipes.append(mine)
        self.processes.append(process)

    def send(self, message) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    async def answers(self) -> list:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(self.executor, self._recv, index)
                                      for index in range(len(self.pipes))))

    def _recv(self, index: int):
        try:
            answer = self.pipes[index].recv()
        except EOFError:
            raise Stopped(f"worker {index} died (exit code "
                          f"{self.processes[index].exitcode})") from None
        if isinstance(answer, tuple) and answer and answer[0] == "error":
            raise Stopped(answer[1])
        return answer

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        loop = asyncio.get_running_loop()
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for process in self.processes:
            await loop.run_in_executor(self.executor, process.join, 10)
            if process.is_alive():
                process.kill()
        self.executor.shutdown(wait=False)


async def main(args: argparse.Namespace) -> None:
    file_limit(args)
    workdir = Path(tempfile.mkdtemp(prefix="logs-fanout-"))
    kubeconfig = workdir / "kubeconfig"
    sim_port, app_port = free_port(), free_port()
    sim_url, app_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{app_port}"
    # Every client connects from one address: the per-address rate limit is off here.
    env = {**os.environ, "GPUCTL_LOG_MAX_STREAMS": str(max(1000, args.pods)),
           "GPUCTL_RATE_LIMIT_PER_SECOND": "0"}
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async", "sim", "--no-workloads", "--port", str(sim_port),
        "--kubeconfig-out", str(kubeconfig), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    service = None
    tasks: list[asyncio.Task] = []
    silent: list = []
    workers = Workers(args.workers, args.connect_budget or None)
    service_log = workdir / "service.log"
    try:
        await wait_http(f"{sim_url}/healthz")
        pods = await make_pods(sim_url, args.pods, args.rate)
        quiet = await make_pods(sim_url, 5, QUIET_RATE, prefix="quiet")
        progress(f"sim up with {args.pods} pods x {args.rate:g} lines/s (+5 quiet ones)")
        with service_log.open("wb") as log_file:  # its warnings, if the run goes wrong
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gpuctl_async", "serve", "--kubeconfig", str(kubeconfig),
                "--port", str(app_port), "--no-access-log", "--log-level", "WARNING",
                "--auth", "none",  # the fan-out is measured here, not TokenReviews
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log_file)
        await wait_http(f"{app_url}/ready", 60.0)
        progress(f"service up (pid {service.pid}, its log: {service_log})")
        urls = [f"{app_url.replace('http', 'ws')}/api/v1/jobs/{pod}/logs/ws" for pod in pods]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            mux_url = f"{app_url.replace('http', 'ws')}/api/v1/stream"
            # Twice as many subscriptions: starting them leaves garbage that waits for the
            # collector's next pass (gc_young_threshold), a fixed amount to spread thin.
            mux_sample = max(1, 2 * args.memory_sample // args.subscriptions)
            per_plain, per_sub = await memory_sample(
                session, service.pid,
                [f"{app_url.replace('http', 'ws')}/api/v1/jobs/{pod}/logs/ws" for pod in quiet],
                mux_url, quiet, args.memory_sample,
                mux_sample if args.multiplex else 0,
                args.subscriptions, tasks)
            rss_before = rss_bytes(service.pid)
            started = time.monotonic()
            share = -(-args.clients // args.workers)
            mux_sockets = args.mux_sockets if args.multiplex else 0
            mux_share = -(-mux_sockets // args.workers)
            progress(f"starting {args.workers} client processes: {args.clients} plain "
                     f"sockets in all")
            for index in range(args.workers):
                mux = (mux_url, pods, max(0, min(mux_share, mux_sockets - index * mux_share)),
                       args.subscriptions, index * mux_share * args.subscriptions)
                workers.start(urls[index::args.workers] or urls,
                              max(0, min(share, args.clients - index * share)), mux)
            plain_open = sum(n for _, n in await workers.answers())
            took = time.monotonic() - started
            progress(f"{plain_open} plain sockets open in {took:.1f} s")
            probes: list[Client] = []
            await connect(session, urls, args.probes, probes, tasks, label="probe sockets",
                          live=True)
            await asyncio.sleep(1.0)  # let the tails arrive before measuring
            rss_after = rss_bytes(service.pid)
            mux_probes: list[Client] = []
            mux_took = 0.0
            if args.multiplex:
                progress(f"opening {mux_sockets} multiplexed sockets x {args.subscriptions} "
                         f"subscriptions")
                workers.send("mux")
                answers = await workers.answers()
                mux_took = max(took for took, _ in answers)
                subs_open = sum(n for _, n in answers)
                await connect_mux(session, mux_url, pods, 1, args.subscriptions, mux_probes,
                                  tasks, label="probe multiplexed socket", live=True)
                await asyncio.sleep(1.0)
                progress(f"{subs_open} subscriptions open in {mux_took:.1f} s")
            rss_mux = rss_bytes(service.pid)
            counters = await sim_counters(sim_url)
            streams = counters["logs"]["open"]
            cpu_start, wall_start = cpu_seconds(service.pid), time.monotonic()
            client_cpu_start = workers.cpu_seconds()
            machine_start = machine_busy()
            progress(f"measuring for {args.seconds:g} s")
            workers.send(args.seconds)
            results, _ = await asyncio.gather(workers.answers(),
                                              measure(probes + mux_probes, args.seconds))
            probe_report = report_clients(probes, args.seconds, args.rate)
            wall = time.monotonic() - wall_start
            cpu = (cpu_seconds(service.pid) - cpu_start) / wall
            client_cpu = (workers.cpu_seconds() - client_cpu_start) / wall
            machine_end = machine_busy()
            busy = ((machine_end[0] - machine_start[0])
                    / max(1, machine_end[1] - machine_start[1]))
            progress("measured; the figures:")
            mux_probe_report = report_clients(mux_probes, args.seconds, args.rate) \
                if mux_probes else None

            def rebuilt(seen_list) -> list[Client]:
                out = []
                for seen in seen_list:
                    client = Client()
                    (client.count, client.first, client.last, client.disorder,
                     client.dropped, client.delays) = seen
                    out.append(client)
                return out

            connected = rebuilt(item for plain, _ in results for item in plain)
            subscribed = rebuilt(item for _, mux in results for item in mux)
            await workers.stop()
            main_report = report_clients(connected, args.seconds, args.rate)
            short = (f" (of {args.clients}: the connect budget of {args.connect_budget:g} s "
                     f"ran out)" if plain_open < args.clients else "")
            print(f"== {plain_open} clients{short} on {args.pods} pods x {args.rate:g} "
                  f"lines/s, read for {args.seconds:g} s")
            print(f"connect time:              {took:.2f} s")
            print(f"upstream log streams:      {sum(streams.values())} open at the sim "
                  f"({len(streams)} pods, max {max(streams.values(), default=0)} per pod)")
            print(f"lossless, in order:        {main_report['lossless_in_order']} of "
                  f"{main_report['clients']} clients")
            print(f"lines per client:          delivered "
                  f"{main_report['lines_delivered_per_client']:.1f}, written "
                  f"{main_report['lines_written_per_client']:.1f} over the same span")
            print(f"delay ts -> receipt:       p50 {main_report['p50_ms']:.1f} ms, "
                  f"p99 {main_report['p99_ms']:.1f} ms, max {main_report['max_ms']:.1f} ms")
            print(f"  probe clients ({args.probes}, in this less busy process): p50 "
                  f"{probe_report['p50_ms']:.1f} ms, p99 {probe_report['p99_ms']:.1f} ms, "
                  f"lossless {probe_report['lossless_in_order']} of {args.probes}")
            print(f"memory per plain socket:   {per_plain / 1024:.1f} KiB (service RSS growth "
                  f"from {args.memory_sample} more sockets on quiet pods, before the traffic)")
            print("  target: <= 20 KiB per plain socket, delay p99 <= 250 ms")
            print(f"  RSS growth under load:   {(rss_after - rss_before) / 1024:.0f} KiB, "
                  f"{(rss_after - rss_before) / (plain_open + args.probes) / 1024:.1f} KiB "
                  f"per connection (also output waiting for lagging clients, one-off costs)")
            if args.multiplex:
                streams_total = len(subscribed) + len(mux_probes)
                mux_report = report_clients(subscribed, args.seconds, args.rate)
                short = (f" (of {mux_sockets}: the connect budget ran out)"
                         if len(subscribed) < mux_sockets * args.subscriptions else "")
                print(f"== beside them, {len(subscribed) // args.subscriptions} multiplexed "
                      f"sockets{short} x {args.subscriptions} subscriptions (+1 probe socket)")
                print(f"subscribe time:            {mux_took:.2f} s")
                print(f"lossless, in order:        {mux_report['lossless_in_order']} of "
                      f"{mux_report['clients']} subscriptions")
                print(f"delay ts -> receipt:       p50 {mux_report['p50_ms']:.1f} ms, "
                      f"p99 {mux_report['p99_ms']:.1f} ms, max {mux_report['max_ms']:.1f} ms")
                print(f"  probe socket ({len(mux_probes)} subscriptions, this process): p50 "
                      f"{mux_probe_report['p50_ms']:.1f} ms, p99 "
                      f"{mux_probe_report['p99_ms']:.1f} ms, lossless "
                      f"{mux_probe_report['lossless_in_order']} of {len(mux_probes)}")
                print(f"memory per subscription:   {per_sub / 1024:.2f} KiB (as above, "
                      f"{mux_sample} sockets x "
                      f"{args.subscriptions} on quiet pods)")
                print("  target: <= 4 KiB per subscription, delay p99 <= 250 ms")
                print(f"  RSS growth under load:   {(rss_mux - rss_after) / 1024:.0f} KiB, "
                      f"{(rss_mux - rss_after) / max(1, streams_total) / 1024:.2f} KiB per "
                      f"subscription")
            print(f"service CPU:               {cpu * 100:.0f}% of one core (the "
                  f"{args.workers} client processes: {client_cpu * 100:.0f}%, "
                  f"{os.cpu_count()} cores)")
            cores = os.cpu_count() or 1
            print(f"machine CPU:               {busy * 100:.0f}% busy over the window "
                  f"(this run's service and clients: {(cpu + client_cpu) / cores * 100:.0f}%;"
                  f" load average {os.getloadavg()[0]:.1f})")
            if busy > 0.8 or client_cpu > 0.8 * args.workers:
                print("  the machine is the limit (its cores were busy, with this run or "
                      "others): the clients' delays are theirs as much as the service's; "
                      "the probes, read by this less busy process, time the service, "
                      "but they too wait for a core")

            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks.clear()
            if not args.normal:
                return
            normal: list[Client] = []
            await connect(session, urls, args.normal, normal, tasks)
            await asyncio.sleep(1.0)
            await measure(normal, args.phase_seconds)
            before = report_clients(normal, args.phase_seconds, args.rate)
            await asyncio.gather(*(silent_client(urls[i % len(urls)], silent)
                                   for i in range(args.silent)))
            await measure(normal, args.phase_seconds)
            after = report_clients(normal, args.phase_seconds, args.rate)
            print(f"== {args.normal} reading clients, then {args.silent} more that never read")
            print(f"reading clients' p99:      {before['p99_ms']:.1f} ms alone, "
                  f"{after['p99_ms']:.1f} ms beside the silent ones "
                  f"(p50 {before['p50_ms']:.1f} -> {after['p50_ms']:.1f} ms)")
            print(f"reading clients lossless:  {after['lossless_in_order']} of "
                  f"{after['clients']}")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    except Stopped as exc:
        progress(f"stopped: {exc}")
        if service_log.exists() and service_log.stat().st_size:
            progress("the service's last log lines:\n"
                     + "\n".join(service_log.read_text(errors="replace").splitlines()[-20:]))
        raise SystemExit(1) from None
    finally:
        await workers.stop()
        for session, ws in silent:
            ws._conn.transport.abort()
            await session.close()
        for process in (service, sim):
            if process is not None and process.returncode is None:
                process.terminate()
                await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0, help="lines per second per pod")
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--normal", type=int, default=100)
    parser.add_argument("--silent", type=int, default=100)
    parser.add_argument("--phase-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--multiplex", action="store_true",
                        help="add multiplexed sockets beside the plain clients")
    parser.add_argument("--mux-sockets", type=int, default=500)
    parser.add_argument("--subscriptions", type=int, default=20,
                        help="log subscriptions per multiplexed socket")
    parser.add_argument("--memory-sample", type=int, default=500,
                        help="plain sockets (and as many subscriptions) measured for memory "
                             "on quiet pods before the traffic")
    parser.add_argument("--connect-budget", type=float, default=0.0, metavar="SECONDS",
                        help="stop opening sockets after this long in each connect phase "
                             "and measure with those open (0: open them all); a busy "
                             "machine connects ever slower as more sockets take lines")
    parser.add_argument("--probes", type=int, default=20,
                        help="extra clients read by the main process, to time the service "
                             "apart from busy client processes")
    asyncio.run(main(parser.parse_args()))

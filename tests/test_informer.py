"""The informer against the simulated cluster: it converges to the truth through drops,
compaction (410) and outages, telling subscribers each change exactly once."""

from __future__ import annotations

import collections

import pytest

from gpuctl_async.k8s.client import KubeClient, build_api_client
from gpuctl_async.k8s.informer import Informer, label_indexer
from gpuctl_async.k8s.cache import keep_pod, shape_pod, take_listed_pod
from gpuctl_async.k8s.podpages import split_page
from gpuctl_async.k8s.resources import PODS
from gpuctl_async.settings import Settings
from tests.helpers import eventually

POD = {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}


def pod(name: str, **labels: str) -> dict:
    return {**POD, "metadata": {"name": name, "labels": labels}}


@pytest.fixture
async def kube(sim, tmp_path):
    settings = Settings(kubeconfig=str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
    api_client, _ = await build_api_client(settings)
    client = KubeClient(api_client)
    yield client
    await client.close()


class Recorder:
    """Counts what subscribers were told, per object."""

    def __init__(self, informer: Informer):
        self.events: list[tuple[str, str]] = []
        informer.subscribe(self)

    def __call__(self, kind, old, new):
        self.events.append((kind, (new or old)["metadata"]["name"]))

    def net_presence(self) -> dict[str, int]:
        """+1 per ADDED, -1 per DELETED: 1 for every live object, 0 for gone ones."""
        presence: collections.Counter[str] = collections.Counter()
        for kind, name in self.events:
            presence[name] += {"ADDED": 1, "DELETED": -1}.get(kind, 0)
        return {name: n for name, n in presence.items() if n}


def truth(sim, namespace="default") -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["resourceVersion"]
            for p in sim.store.list("pods", namespace=namespace)}


def cached(informer: Informer) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in informer.items()}


async def converged(sim, informer: Informer, timeout: float = 10.0) -> None:
    async def both():
        return truth(sim), cached(informer)
    await eventually(both, lambda pair: pair[0] == pair[1], timeout=timeout)


@pytest.fixture
async def informer(kube):
    informer = Informer(kube, PODS, page_size=7, backoff_initial=0.05, backoff_max=0.5,
                        indexers={"team": label_indexer("team")})
    yield informer
    await informer.stop()


async def test_lists_in_pages_then_follows_changes(sim, informer):
    sim.seed("pods", 20, namespace="default", template={**POD})
    sim.reset_counters()
    recorder = Recorder(informer)
    informer.start()
    assert await informer.wait_for(lambda: informer.synced, 5)
    assert sim.request_count("list", "pods") == 3  # 20 pods, 7 per page
    sim.store.create("pods", pod("extra", team="a"), namespace="default")
    sim.store.delete("pods", "seed-pod-00000", namespace="default", grace_period_seconds=0)
    await converged(sim, informer)
    assert [p["metadata"]["name"] for p in informer.by_index("team", "a")] == ["extra"]
    assert recorder.net_presence() == {name: 1 for name in truth(sim)}
    assert recorder.events.count(("ADDED", "extra")) == 1


async def test_an_expired_continue_token_lists_again_from_the_start(sim, kube):
    """Pages are fetched ahead; history compacted mid-list makes a later page 410, and the
    list starts over, complete and with nothing twice."""
    sim.seed("pods", 30, namespace="default", template={**POD})
    compacted = []

    def keep(obj):
        if not compacted:  # while the first page is taken in: the list's snapshot expires
            sim.store.create("pods", pod("during-list"), namespace="default")
            compacted.append(sim.store.compact())
        return True

    informer = Informer(kube, PODS, page_size=7, keep=keep)
    recorder = Recorder(informer)
    sim.reset_counters()
    informer.start()
    try:
        assert await informer.wait_for(lambda: informer.synced, 5)
        assert sim.request_count("list", "pods") > 5  # 5 pages, then again from the start
        assert cached(informer) == truth(sim)
        assert recorder.net_presence() == {name: 1 for name in truth(sim)}
        assert all(kind == "ADDED" for kind, _ in recorder.events)
    finally:
        await informer.stop()


async def test_resumes_after_watches_are_cut(sim, informer):
    informer.start()
    assert await informer.wait_for(lambda: informer.synced, 5)
    recorder = Recorder(informer)
    sim.reset_counters()
    for round_ in range(3):
        sim.close_watches()
        sim.store.create("pods", pod(f"after-cut-{round_}"), namespace="default")
    await converged(sim, informer)
    assert sim.request_count("list", "pods") == 0  # resumed from its resourceVersion
    assert sorted(recorder.events) == [("ADDED", f"after-cut-{i}") for i in range(3)]


async def test_relists_after_410_and_emits_only_the_difference(sim, informer):
    sim.seed("pods", 5, namespace="default", template={**POD})
    informer.start()
    assert await informer.wait_for(lambda: informer.synced, 5)
    recorder = Recorder(informer)
    await _changed_behind_a_410(sim, informer, recorder, pod("newcomer"))


async def _changed_behind_a_410(sim, informer, recorder: Recorder, newcomer: dict) -> None:
    """While the watch is cut and history compacted, the cluster changes: a pod goes, one
    (``newcomer``) comes, one changes. The informer must relist and report exactly that."""
    sim.close_watches()
    sim.store.delete("pods", "seed-pod-00000", namespace="default", grace_period_seconds=0)
    sim.store.create("pods", newcomer, namespace="default")
    sim.store.patch("pods", "seed-pod-00001", {"metadata": {"labels": {"x": "y"}}},
                    namespace="default", patch_type="application/merge-patch+json")
    sim.compact()
    sim.close_watches()
    await converged(sim, informer)
    assert sorted(recorder.events) == [("ADDED", "newcomer"), ("DELETED", "seed-pod-00000"),
                                       ("MODIFIED", "seed-pod-00001")]


async def test_reopens_a_stalled_stream(sim, kube):
    # The watch falls silent (a stalled connection: no bytes, no end); past the inactivity
    # timeout the informer takes it for dead and opens another, which sees what changed.
    informer = Informer(kube, PODS, inactivity_timeout=0.5, watch_timeout=30,
                        backoff_initial=0.01)
    try:
        informer.start()
        assert await informer.wait_for(lambda: informer.synced, 5)
        assert await informer.wait_for(lambda: informer.connected, 5)
        sim.reset_counters()
        sim.silence_watches(0.8)
        sim.store.create("pods", pod("still-seen"), namespace="default")
        await eventually(lambda: sim.request_count("watch", "pods"), lambda n: n >= 1,
                         timeout=5)
        await converged(sim, informer)
        assert informer.not_ready_reason() is None  # a short reconnect: still ready
    finally:
        await informer.stop()


async def test_watch_ends_at_its_timeout_and_resumes_quietly(sim, kube, caplog):
    # The server ends each watch at the timeoutSeconds asked for: routine, logged at DEBUG
    # only, resumed from the resourceVersion without a relist.
    informer = Informer(kube, PODS, inactivity_timeout=5, watch_timeout=1)
    try:
        with caplog.at_level("DEBUG", logger="gpuctl_async.k8s.informer"):
            informer.start()
            assert await informer.wait_for(lambda: informer.synced, 5)
            sim.reset_counters()
            await eventually(lambda: sim.request_count("watch", "pods"), lambda n: n >= 2,
                             timeout=5)
        assert sim.request_count("list", "pods") == 0
        ended = [r for r in caplog.records if "watch ended" in r.getMessage()]
        assert ended and all(r.levelname == "DEBUG" for r in ended)
        assert not [r for r in caplog.records if r.levelno >= 30]
    finally:
        await informer.stop()


async def test_outage_keeps_last_state_then_catches_up(sim, kube):
    informer = Informer(kube, PODS, outage_grace=0.5, backoff_initial=0.05, backoff_max=0.5)
    try:
        sim.seed("pods", 3, namespace="default", template={**POD})
        informer.start()
        assert await informer.wait_for(lambda: informer.synced, 5)
        before = cached(informer)
        sim.set_unavailable(3)
        sim.close_watches()
        reason = await eventually(informer.not_ready_reason, lambda r: r is not None,
                                  timeout=5)
        assert reason.startswith("watch of pods has been down for ")
        assert cached(informer) == before  # stale but served
        sim.set_unavailable(0)
        sim.store.create("pods", pod("after-outage"), namespace="default")
        await converged(sim, informer)
        assert informer.not_ready_reason() is None
    finally:
        await informer.stop()


async def test_never_synced_cache_refuses_reads_with_the_ready_reason(sim, kube):
    from gpuctl_async.errors import Unavailable

    sim.refuse("list", "pods")
    informer = Informer(kube, PODS, backoff_initial=0.05, backoff_max=0.2)
    try:
        informer.start()
        reason = await eventually(informer.not_ready_reason, lambda r: r and "forbidden" in r,
                                  timeout=5)
        assert reason.startswith("cache of pods has not synced yet: pods is forbidden")
        for read in (lambda: informer.get("default", "x"), informer.items, len,
                     lambda: informer.in_namespace("default")):
            with pytest.raises(Unavailable) as exc:
                read() if read is not len else len(informer)
            assert exc.value.message == informer.not_ready_reason()
        assert informer.peek("default", "x") is None  # subscribers' reader answers
        sim.refuse(None)
        assert await informer.wait_for(lambda: informer.synced, 5)
        assert list(informer.items()) == []
    finally:
        await informer.stop()


async def test_event_cache_keeps_only_recent_events_about_job_parts(sim, kube):
    from datetime import datetime, timedelta, timezone

    from gpuctl_async.k8s.cache import ClusterCache

    def event(name: str, kind: str, age: float) -> dict:
        stamp = (datetime.now(timezone.utc) - timedelta(seconds=age)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        return {"metadata": {"name": name}, "involvedObject": {"kind": kind, "name": "x",
                                                               "namespace": "default"},
                "reason": "Test", "message": name, "type": "Normal", "count": 1,
                "firstTimestamp": stamp, "lastTimestamp": stamp}

    cache = ClusterCache(kube, event_retention=2.0)
    for name, kind, age in (("old", "Pod", 60), ("fresh", "Pod", 0), ("node", "Node", 0)):
        sim.store.create("events", event(name, kind, age), namespace="default")
    cache.start()
    try:
        assert await cache.wait_synced(timeout=5)
        events = cache.events
        assert {e["metadata"]["name"] for e in events.items()} == {"fresh"}
        # Once it is older than the retention window, the pruner forgets it.
        await eventually(lambda: len(events), lambda n: n == 0, timeout=6)
    finally:
        await cache.stop()


async def test_decoded_pages_list_in_pages_and_relist_only_the_difference(sim, kube):
    """The pod cache decodes its own list pages (``k8s.podpages``): paging, the cached
    objects and a relist's difference are as with whole-decoded pages."""
    bound = {"spec": {"nodeName": "gpu-1", "containers": [
        {"name": "main", "image": "busybox:1.36",
         "resources": {"requests": {"cpu": "1"}}}]}}
    sim.seed("pods", 20, namespace="default", template=bound)
    informer = Informer(kube, PODS, page_size=7, keep=keep_pod, transform=shape_pod,
                        split_page=split_page, take_item=take_listed_pod)
    recorder = Recorder(informer)
    sim.reset_counters()
    informer.start()
    try:
        assert await informer.wait_for(lambda: informer.synced, 5)
        assert sim.request_count("list", "pods") == 3  # 20 pods, 7 per page
        assert cached(informer) == truth(sim)
        for stored in sim.store.list("pods", namespace="default"):
            assert informer.get("default", stored["metadata"]["name"]) == shape_pod(stored)
        recorder.events.clear()
        await _changed_behind_a_410(sim, informer, recorder,
                                    {**bound, "metadata": {"name": "newcomer"}})
    finally:
        await informer.stop()

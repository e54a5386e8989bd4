"""The review cache: TTLs, a size bound, coalescing, and failures not cached."""

from __future__ import annotations

import asyncio

import pytest

from gpuctl_async.auth.cache import ReviewCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_entries_expire_after_their_ttl_and_the_oldest_go_first():
    clock = Clock()
    cache: ReviewCache[str] = ReviewCache(max_size=2, clock=clock)
    calls = []

    async def lookup(key, ttl=10.0):
        calls.append(key)
        return f"value-{key}", ttl

    assert await cache.get("a", lambda: lookup("a")) == "value-a"
    assert await cache.get("a", lambda: lookup("a")) == "value-a"
    assert calls == ["a"]
    clock.now = 10.5
    await cache.get("a", lambda: lookup("a"))
    assert calls == ["a", "a"]
    await cache.get("b", lambda: lookup("b"))
    await cache.get("c", lambda: lookup("c"))
    assert len(cache) == 2 and cache.peek("a") == (False, None)


async def test_concurrent_misses_share_one_lookup_and_failures_are_not_cached():
    cache: ReviewCache[int] = ReviewCache(max_size=10)
    release = asyncio.Event()
    calls = 0

    async def slow():
        nonlocal calls
        calls += 1
        await release.wait()
        return 42, 60.0

    waiters = [asyncio.create_task(cache.get("k", slow)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [42] * 10 and calls == 1

    async def failing():
        raise ConnectionError("API server unreachable")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await cache.get("f", failing)
    assert cache.peek("f") == (False, None)

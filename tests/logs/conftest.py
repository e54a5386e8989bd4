"""Fixtures for the log routes: a simulated cluster whose containers log 50 lines a second."""

from __future__ import annotations

import pytest

from gpuctl_async.sim.testing import SimCluster

RATE = 50


@pytest.fixture
async def sim():
    async with SimCluster(log_lines_per_second=RATE, max_grace_seconds=0.2) as cluster:
        yield cluster

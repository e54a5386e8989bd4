"""Shown ages, and when each one stops being true."""

from __future__ import annotations

import pytest

from gpuctl_async.jobs.status import duration_and_change, format_duration


@pytest.mark.parametrize(("seconds", "shown", "changes_at"), [
    (-5.0, "0s", 1),  # clock skew: never negative
    (0.0, "0s", 1),
    (59.9, "59s", 60),
    (60.0, "1m", 120),
    (3599.0, "59m", 3600),
    (3600.0, "1h", 7200),
    (86399.0, "23h", 86400),
    (86400.0, "1d", 172800),
    (10 * 86400 + 5.0, "10d", 11 * 86400),
])
def test_an_age_and_when_it_reads_differently(seconds, shown, changes_at):
    assert duration_and_change(seconds) == (shown, changes_at)
    assert format_duration(seconds) == shown
    # Just before the change it still reads the same; at the change it does not.
    assert format_duration(changes_at - 0.001) == shown
    assert format_duration(changes_at) != shown

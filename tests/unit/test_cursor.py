"""The resume cursor's token: round trips, relative pod names, the floor, refusals."""

from __future__ import annotations

import pytest

from gpuctl_async.logs.cursor import ALL, MAX_PODS, Cursor, CursorError, after
from gpuctl_async.logs.lines import Line, parse_ts


def line(pod: str, ns: int, seq: int = 0) -> Line:
    return Line(ns, "", "text", pod, seq)


def test_a_token_round_trips_with_pods_named_relative_to_the_job():
    cursor = Cursor("train", {"train-aaaaa": (10**18, 1), "other-pod": (10**18 + 5, 3)})
    token = cursor.token()
    assert token == f"1~.aaaaa_{10**18:x}~other-pod_{10**18 + 5:x}_3"
    again = Cursor.parse(token, "train")
    assert again.positions == cursor.positions and again.token() == token
    assert Cursor.parse(token).rebind("train").positions == cursor.positions


def test_positions_say_which_lines_come_after_them():
    cursor = Cursor("train")
    cursor.advance(line("train-a", 100, 1))  # the second line stamped 100
    position = cursor.position("train-a")
    assert position == (100, 2)
    assert not after(line("train-a", 100, 1), position)
    assert after(line("train-a", 100, 2), position) and after(line("train-a", 101), position)
    assert cursor.position("train-b") is None  # not named: from its first line


def test_a_plain_timestamp_is_a_floor_for_every_pod():
    cursor = Cursor.parse("2024-01-01T12:00:00.5Z", "train")
    ns = parse_ts("2024-01-01T12:00:00.5Z")
    assert cursor.position("train-anything") == (ns, ALL)
    assert not after(line("p", ns, 5), cursor.position("p")) and after(line("p", ns + 1),
                                                                       cursor.position("p"))
    cursor.advance(line("train-a", ns + 7))
    assert Cursor.parse(cursor.token(), "train").floor == (ns, ALL)


@pytest.mark.parametrize("bad", ["", "yesterday", "1~train-a", "1~train-a_xyz", "1~Train_1",
                                 "1~train-a_1_0", "1~train-a_" + "f" * 17,
                                 "1~" + "~".join(["a_1"] * (MAX_PODS + 2))])
def test_anything_else_is_refused(bad):
    with pytest.raises(CursorError):
        Cursor.parse(bad)

"""The app-wide heartbeat's bookkeeping, on stand-in sockets (the routes' behaviour is
tested end to end in tests/logs/test_backpressure.py)."""

from __future__ import annotations

from aiohttp import WSMessage, WSMsgType

from gpuctl_async.api.heartbeat import PING, PONG_BUFFER_LIMIT, Heartbeat


class Transport:
    def __init__(self, buffered: int = 0):
        self.written: list[bytes] = []
        self.buffered = buffered
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


class Socket:
    closed = False


class Request:
    def __init__(self, transport: Transport):
        self.transport = transport


def _ping(data: bytes) -> WSMessage:
    return WSMessage(WSMsgType.PING, data, None)


def test_a_ping_is_answered_with_its_payload_unless_the_send_buffer_is_full():
    heartbeat = Heartbeat(1.0)
    reading, stuck = Transport(), Transport(buffered=PONG_BUFFER_LIMIT)
    one, other = Socket(), Socket()
    heartbeat.add(one, Request(reading))
    heartbeat.add(other, Request(stuck))
    assert heartbeat.consumed(one, _ping(b"hi")) and heartbeat.consumed(other, _ping(b"hi"))
    assert reading.written == [b"\x8a\x02hi"]
    assert stuck.written == []  # a client pinging without reading gets no growing buffer


def test_a_beat_drops_the_sockets_silent_since_the_last_one():
    heartbeat = Heartbeat(1.0)
    quiet, talking = Transport(), Transport()
    silent, alive = Socket(), Socket()
    heartbeat.add(silent, Request(quiet))
    heartbeat.add(alive, Request(talking))
    heartbeat.beat()
    assert quiet.written == talking.written == [PING]
    assert heartbeat.consumed(alive, WSMessage(WSMsgType.PONG, b"", None))
    assert not heartbeat.consumed(alive, WSMessage(WSMsgType.TEXT, "{}", None))
    heartbeat.beat()
    assert quiet.aborted and not talking.aborted and heartbeat.dead == 1
    assert talking.written == [PING, PING] and quiet.written == [PING]
    heartbeat.discard(silent)
    heartbeat.beat()
    assert talking.aborted and heartbeat.dead == 2  # answered nothing since the last beat

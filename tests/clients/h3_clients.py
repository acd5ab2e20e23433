#!/usr/bin/env python3
"""Pooled HTTP/3 clients on aioquic (PyPI): each keeps one QUIC connection,
sends `GET /` and `POST /echo` in turn with a pause of 0-300 ms between
requests, and never retries a request that failed. A client honours the
server's GOAWAY as browsers do (aioquic's H3Connection skips the frame;
here its arrival is noted): no new request on that connection, the next
one on a new connection. A request the server rejected as beyond its GOAWAY
(H3_REQUEST_REJECTED: not processed, RFC 9114 §4.1.1) is counted apart and
sent again on a new connection; every other failure is a failure. Runs
until STOP_FILE exists and prints one JSON object:

  {"ok": n, "slow_ok": n, "failed": n, "errors": [...first 20...], "rejected": n,
   "pids": {"pid": answers}, "connections": n, "goaways": n,
   "moved_after_goaway": n, "moved_without_goaway": n, "answered_beyond_goaway": n,
   "timeline": [[client, connection, pid, "goaway"|"closed"|null], ...]}

`answered_beyond_goaway` counts requests answered although a GOAWAY of the
server declared their stream id (or a lower one) not processed: a client
that believes it would send them again elsewhere (RFC 9114 §5.2), so each is
one request processed twice. `moved_*` count the new connections a client opened because its last one
announced a GOAWAY, or ended without one (closed by the server, or lost).

With --slow-uploads every fourth request is a POST /echo of 96 KiB sent in
32 pieces 25 ms apart, so that uploads are under way at every reload (and
`slow_ok` counts those answered in full).

With --ignore-goaway a client sends on after a GOAWAY, as a careless one
does, until a request is refused (`rejected`).

usage: h3_clients.py HOST PORT CLIENTS STOP_FILE CAFILE [--slow-uploads] [--ignore-goaway]
"""

import asyncio
import json
import os
import random
import sys

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic import events as quic_events
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived, StreamReset

# Reported since aioquic 1.0; older ones never say.
StopSendingReceived = getattr(quic_events, "StopSendingReceived", ())

H3_REQUEST_REJECTED = 0x10B


class GoawayH3(H3Connection):
    """aioquic's H3Connection, noting the GOAWAY it otherwise ignores. Up to
    aioquic 1.3 (nixpkgs' build) every control frame reaches
    `_handle_control_frame`, which skips GOAWAY; later versions (PyPI's
    1.7, tests/run's venv) discard the payload of a frame they do not use
    and only `_check_control_frame_type` sees it arrive. Either hook notes
    it; neither changes what aioquic does."""

    goaway = False

    def _check_control_frame_type(self, frame_type):
        super()._check_control_frame_type(frame_type)
        if frame_type == FrameType.GOAWAY:
            self.goaway = True

    def _handle_control_frame(self, frame_type, frame_data):
        super()._handle_control_frame(frame_type, frame_data)
        if frame_type == FrameType.GOAWAY:
            self.goaway = True


def varint(data, at):
    """A QUIC variable-length integer at `at`: (value, next), or None if cut."""
    if at >= len(data):
        return None
    size = 1 << (data[at] >> 6)
    if at + size > len(data):
        return None
    value = data[at] & 0x3F
    for b in data[at + 1:at + size]:
        value = (value << 8) | b
    return value, at + size


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = GoawayH3(self._quic)
        self.waiting = {}
        self.terminated = None
        # The server's unidirectional streams as read so far, to find the
        # ids its GOAWAY frames carry (aioquic reads none of them).
        self.server_uni = {}
        self.goaway_ids = []
        self.answered = []
        # The codes of the server's STOP_SENDING frames, in order.
        self.stops = []

    def note_goaway_ids(self, stream_id, data):
        """Reads GOAWAY frames (type 7) on the server's control stream (the
        uni stream of type 0), keeping each frame's id."""
        buf = self.server_uni.setdefault(stream_id, bytearray())
        buf += data
        kind = varint(buf, 0)
        if kind is None or kind[0] != 0:
            return
        at = kind[1]
        while True:
            frame = varint(buf, at)
            length = frame and varint(buf, frame[1])
            if not length or length[1] + length[0] > len(buf):
                break
            body = length[1]
            if frame[0] == FrameType.GOAWAY:
                goaway = varint(buf, body)
                if goaway:
                    self.goaway_ids.append(goaway[0])
            at = body + length[0]
        del buf[kind[1]:at]

    def answered_beyond_goaway(self):
        """Requests answered whose stream id a GOAWAY of the server declared
        not processed (RFC 9114 5.2: that id and every higher one)."""
        if not self.goaway_ids:
            return 0
        last = min(self.goaway_ids)
        return sum(1 for stream in self.answered if stream >= last)

    def quic_event_received(self, event):
        if isinstance(event, StopSendingReceived):
            self.stops.append(event.error_code)
        if isinstance(event, StreamDataReceived) and event.stream_id % 4 == 3:
            self.note_goaway_ids(event.stream_id, event.data)
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed: %s" % event.error_code))
            return
        if isinstance(event, StreamReset) and event.stream_id in self.waiting:
            fut = self.waiting.pop(event.stream_id)
            if not fut.done():
                fut.set_exception(StreamRejected(event.error_code))
            return
        for h3_event in self.h3.handle_event(event):
            stream = getattr(h3_event, "stream_id", None)
            if stream not in self.waiting:
                continue
            fut = self.waiting[stream]
            state = fut.state
            if isinstance(h3_event, HeadersReceived):
                state["headers"] = dict(h3_event.headers)
            elif isinstance(h3_event, DataReceived):
                state["body"] += h3_event.data
            if getattr(h3_event, "stream_ended", False) and not fut.done():
                self.waiting.pop(stream)
                self.answered.append(stream)
                fut.set_result(state)

    async def request(self, method, path, body=b"", chunks=1, pause=0.0):
        """One request; a body goes in `chunks` pieces `pause` seconds apart
        (a slow upload), the answer is awaited for at most 10 s."""
        stream = self._quic.get_next_available_stream_id()
        headers = [(b":method", method), (b":scheme", b"https"),
                   (b":authority", b"localhost"), (b":path", path)]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        fut = asyncio.get_running_loop().create_future()
        fut.state = {"headers": {}, "body": b""}
        self.waiting[stream] = fut
        self.h3.send_headers(stream, headers, end_stream=not body)
        size = -(-len(body) // chunks) if body else 0
        for i in range(0, len(body), size or 1):
            if i:
                self.transmit()
                await asyncio.sleep(pause)
                if fut.done():
                    break
            self.h3.send_data(stream, body[i:i + size], end_stream=i + size >= len(body))
        self.transmit()
        return await asyncio.wait_for(fut, 10)


class StreamRejected(Exception):
    def __init__(self, code):
        super().__init__("stream reset %#x" % code)
        self.code = code


async def client(index, host, port, stop_file, cafile, slow, heed_goaway, totals):
    rng = random.Random(index)
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.load_verify_locations(cafile)
    config.server_name = "localhost"
    n = 0
    connection = 0
    why_moved = None
    while not os.path.exists(stop_file):
        connection += 1
        totals["connections"] += 1
        if why_moved == "goaway":
            totals["moved_after_goaway"] += 1
        elif why_moved == "closed":
            totals["moved_without_goaway"] += 1
        why_moved = None
        try:
            async with connect(host, port, configuration=config, create_protocol=Client,
                               wait_connected=True) as conn:
                pid_seen = None
                while not os.path.exists(stop_file):
                    if conn.h3.goaway and heed_goaway:
                        why_moved = "goaway"
                        totals["goaways"] += 1
                        break
                    if conn.terminated is not None:
                        why_moved = "closed"
                        break
                    n += 1
                    body = (("%d-%d " % (index, n)) * rng.randint(1, 200)).encode()
                    try:
                        if slow and n % 4 == 0:
                            # 96 KiB in 32 pieces 25 ms apart: an upload
                            # that is under way at every reload.
                            big = (b"%d-%d " % (index, n)) * (96 * 1024 // 8)
                            big = big[:96 * 1024]
                            r = await conn.request(b"POST", b"/echo", big, chunks=32, pause=0.025)
                            ok = r["headers"].get(b":status") == b"200" and r["body"] == big
                            pid = None
                            if ok:
                                totals["slow_ok"] += 1
                        elif n % 2:
                            r = await conn.request(b"GET", b"/")
                            text = r["body"].decode(errors="replace")
                            ok = r["headers"].get(b":status") == b"200" and text.startswith("handoff ")
                            pid = text.split(" pid ")[1].split()[0] if ok else None
                        else:
                            r = await conn.request(b"POST", b"/echo", body)
                            ok = r["headers"].get(b":status") == b"200" and r["body"] == body
                            pid = None
                        error = None if ok else "status %r: %r" % (r["headers"].get(b":status"), r["body"][:200])
                    except StreamRejected as e:
                        if e.code == H3_REQUEST_REJECTED:
                            totals["rejected"] += 1
                            why_moved = "goaway"
                            break
                        ok, pid, error = False, None, str(e)
                    except Exception as e:  # every failure is counted, none retried
                        ok, pid, error = False, None, "%s: %s" % (type(e).__name__, e)
                    if ok:
                        totals["ok"] += 1
                    else:
                        totals["failed"] += 1
                        if len(totals["errors"]) < 20:
                            totals["errors"].append(error)
                    if pid is not None:
                        totals["pids"][pid] = totals["pids"].get(pid, 0) + 1
                        if pid != pid_seen:
                            totals["timeline"].append([index, connection, pid, None])
                            pid_seen = pid
                    await asyncio.sleep(rng.uniform(0, 0.3))
                totals["answered_beyond_goaway"] += conn.answered_beyond_goaway()
                if totals["timeline"] and why_moved:
                    totals["timeline"].append([index, connection, pid_seen, why_moved])
        except Exception as e:
            totals["failed"] += 1
            if len(totals["errors"]) < 20:
                totals["errors"].append("connect: %s: %s" % (type(e).__name__, e))
            await asyncio.sleep(0.1)


async def main():
    host, port, clients, stop_file, cafile = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                              sys.argv[4], sys.argv[5])
    slow = "--slow-uploads" in sys.argv[6:]
    heed_goaway = "--ignore-goaway" not in sys.argv[6:]
    totals = {"ok": 0, "slow_ok": 0, "failed": 0, "errors": [], "rejected": 0, "pids": {}, "connections": 0,
              "goaways": 0, "moved_after_goaway": 0, "moved_without_goaway": 0, "timeline": [],
              "answered_beyond_goaway": 0}
    await asyncio.gather(*(client(i, host, port, stop_file, cafile, slow, heed_goaway, totals) for i in range(clients)))
    json.dump(totals, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())

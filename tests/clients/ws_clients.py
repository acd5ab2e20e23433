#!/usr/bin/python3
"""WebSocket clients for the long-lived tests, on Python's `websockets`
(Debian's python3-websockets): each sends numbered text messages with random
pauses and counts the acknowledgements, reconnects whenever its connection
ends (a refused handshake, counted: after a short pause), and sends again
whatever was never acknowledged. Runs until STOP_FILE exists, then waits up
to 10 s for the last acknowledgements and prints one JSON object:

  {"clients": [{"sent", "acked", "duplicate_acks", "unacked",
                "connections": [{"at", "pid", "generation", "first_ack",
                                 "closed_at", "close_code"}],
                "refused", "refused_statuses"}]}

usage: ws_clients.py URL CLIENTS STOP_FILE
"""

import asyncio
import json
import os
import random
import sys
import time

import websockets
import websockets.exceptions


# A refused handshake: websockets 10 (Debian 12) raises InvalidStatusCode,
# 14 and later InvalidStatus.
REFUSED = tuple(getattr(websockets.exceptions, name)
                for name in ("InvalidStatusCode", "InvalidStatus")
                if hasattr(websockets.exceptions, name))


def status_of(error):
    if hasattr(error, "status_code"):
        return error.status_code
    return error.response.status_code


async def client(index, url, stop_file, record):
    next_seq = 0
    unacked = {}
    acked = set()
    stopping_since = None
    while True:
        if os.path.exists(stop_file):
            stopping_since = stopping_since or time.time()
            if not unacked or time.time() - stopping_since > 10:
                break
        conn = {"at": time.time(), "pid": None, "generation": None,
                "first_ack": None, "closed_at": None, "close_code": None}
        ws = None
        try:
            async with websockets.connect(url, open_timeout=5, close_timeout=5,
                                          ping_interval=None) as ws:
                record["connections"].append(conn)
                for seq in sorted(unacked):
                    await ws.send(unacked[seq])

                async def read():
                    try:
                        await read_all()
                    except websockets.ConnectionClosed:
                        pass

                async def read_all():
                    async for message in ws:
                        answer = json.loads(message)
                        seq = int(answer["ack"].split(":")[1])
                        if seq in acked:
                            record["duplicate_acks"] += 1
                        acked.add(seq)
                        unacked.pop(seq, None)
                        if conn["first_ack"] is None:
                            conn["first_ack"] = time.time()
                            conn["pid"] = answer["pid"]
                            conn["generation"] = answer["generation"]

                reader = asyncio.ensure_future(read())
                while not os.path.exists(stop_file) and not reader.done():
                    text = f"{index}:{next_seq}"
                    unacked[next_seq] = text
                    next_seq += 1
                    await ws.send(text)
                    await asyncio.wait([reader], timeout=random.uniform(0.05, 0.3))
                # Stopping: the last acknowledgements, then a normal close.
                deadline = time.time() + 10
                while unacked and not reader.done() and time.time() < deadline:
                    await asyncio.wait([reader], timeout=0.05)
                if not reader.done():
                    await ws.close()
                await reader
        except websockets.ConnectionClosed:
            pass
        except REFUSED as e:
            # A refused handshake is a failure a client sees: counted with
            # its status, and the test expects none.
            record["refused"] += 1
            record["refused_statuses"].append(status_of(e))
            await asyncio.sleep(0.1)
            continue
        except (OSError, asyncio.TimeoutError) as e:
            record["errors"].append(repr(e))
            await asyncio.sleep(0.1)
            continue
        conn["closed_at"] = time.time()
        code = ws.close_code if ws is not None else None
        conn["close_code"] = 1006 if code is None else code
    record["sent"] = next_seq
    record["acked"] = len(acked)
    record["unacked"] = len(unacked)


async def main():
    url, count, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    records = [{"connections": [], "duplicate_acks": 0, "refused": 0, "refused_statuses": [], "errors": []}
               for _ in range(count)]
    await asyncio.gather(*(client(i, url, stop_file, records[i]) for i in range(count)))
    json.dump({"clients": records}, sys.stdout)


asyncio.run(main())

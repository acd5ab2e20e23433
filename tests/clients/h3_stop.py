#!/usr/bin/env python3
"""What one HTTP/3 client sees when the server stops (a restart, no
successor): it connects with aioquic, answers `GET /` (the server's pid on
stdout's first line, `pid N`), starts `GET /delay/MS` and writes `waiting`
(the test then stops the server), and keeps its connection open, sending
nothing more, as a client between requests does. It prints one JSON object:

  {"delayed_status": "200"|null, "delayed_error": str|null,
   "close_code": n|null, "closed_after_s": seconds from `waiting`|null}

`close_code` is the application error code of the server's
CONNECTION_CLOSE (0x100 is H3_NO_ERROR), null if none came within LIMIT s.

usage: h3_stop.py HOST PORT CAFILE DELAY_MS LIMIT_S
"""

import asyncio
import json
import sys
import time

from aioquic.asyncio import connect
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration

from h3_clients import Client


async def main(host, port, cafile, delay_ms, limit):
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.load_verify_locations(cafile)
    config.server_name = "localhost"
    # Longer than any test waits: an end the client sees comes from the
    # server, not from this side's idle timer.
    config.idle_timeout = 120.0
    out = {"delayed_status": None, "delayed_error": None, "close_code": None,
           "closed_after_s": None}
    async with connect(host, port, configuration=config, create_protocol=Client,
                       wait_connected=True) as conn:
        first = await conn.request(b"GET", b"/")
        pid = first["body"].decode().split(" pid ")[1].split()[0]
        print("pid", pid, flush=True)
        delayed = asyncio.ensure_future(conn.request(b"GET", b"/delay/%d" % delay_ms))
        await asyncio.sleep(0.2)
        print("waiting", flush=True)
        since = time.monotonic()
        try:
            r = await delayed
            out["delayed_status"] = r["headers"].get(b":status", b"").decode()
        except Exception as e:
            out["delayed_error"] = "%s: %s" % (type(e).__name__, e)
        while conn.terminated is None and time.monotonic() - since < limit:
            await asyncio.sleep(0.02)
        if conn.terminated is not None:
            out["close_code"] = conn.terminated.error_code
            out["closed_after_s"] = round(time.monotonic() - since, 3)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    host, port, cafile, delay_ms, limit = sys.argv[1:6]
    asyncio.run(main(host, int(port), cafile, int(delay_ms), float(limit)))

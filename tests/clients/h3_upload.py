#!/usr/bin/env python3
"""One slow HTTP/3 upload on aioquic: connects, prints `pid N` (the process
its connection is with), then POSTs /echo SIZE bytes in PIECES pieces PAUSE
seconds apart (to PATH, when given), printing `uploading` once it has
begun, and prints one JSON object:
{"status": "200"|null, "echoed": bool, "error": str|null, "stops": [int]},
`stops` the codes of the server's STOP_SENDING frames heard within 0.5 s
of the answer.

usage: h3_upload.py HOST PORT CAFILE SIZE PIECES PAUSE [PATH]
"""

import asyncio
import json
import sys

from aioquic.asyncio import connect
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration

from h3_clients import Client


async def main(host, port, cafile, size, pieces, pause, path):
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.load_verify_locations(cafile)
    config.server_name = "localhost"
    out = {"status": None, "echoed": False, "error": None, "stops": []}
    async with connect(host, port, configuration=config, create_protocol=Client,
                       wait_connected=True) as conn:
        first = await conn.request(b"GET", b"/")
        print("pid", first["body"].decode().split(" pid ")[1].split()[0], flush=True)
        body = (b"0123456789abcdef" * (size // 16 + 1))[:size]
        upload = asyncio.ensure_future(conn.request(b"POST", path, body, chunks=pieces, pause=pause))
        await asyncio.sleep(pause)
        print("uploading", flush=True)
        try:
            r = await asyncio.wait_for(upload, pieces * pause + 20)
            out["status"] = r["headers"].get(b":status", b"").decode()
            out["echoed"] = r["body"] == body
        except Exception as e:
            out["error"] = "%s: %s" % (type(e).__name__, e)
        await asyncio.sleep(0.5)
        out["stops"] = conn.stops
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    host, port, cafile, size, pieces, pause = sys.argv[1:7]
    path = sys.argv[7].encode() if len(sys.argv) > 7 else b"/echo"
    asyncio.run(main(host, int(port), cafile, int(size), int(pieces), float(pause), path))

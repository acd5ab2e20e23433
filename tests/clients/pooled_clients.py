#!/usr/bin/python3
"""Pooled HTTP/1.1 clients for the HTTPS tests, on Python's `requests`
(Debian's python3-requests, urllib3 underneath), each in a thread with a
Session of its own: kept connections, a pause of 0-300 ms between requests,
`GET /` and `POST /echo` in turn, no retry (requests' default: a request
that fails on a kept connection is a failure, not retried). Runs until
STOP_FILE exists and prints one JSON object:

  {"ok": n, "failed": n, "errors": ["...", ...first 20...],
   "pids": {"pid": requests answered, ...}, "closes": n,
   "connections": n, "dropped": n, "pending_closes": n}

`closes` counts answers that said `Connection: close`; `connections` the
connections opened; `dropped` the kept connections urllib3 found closed
before a request and replaced without a word (it logs "Resetting dropped
connection"). Those include the ones closed after a `Connection: close`
answer (urllib3 keeps them in its pool); any beyond `closes` were dropped
by the server unannounced, which shows here and not as a failure.
`pending_closes`: clients whose last answer said `Connection: close` (no
request followed, so urllib3 has not replaced that connection yet).

usage: pooled_clients.py BASE_URL CLIENTS STOP_FILE CAFILE
"""

import json
import logging
import os
import random
import sys
import threading
import time

import requests


def client(base, stop_file, cafile, totals, lock, seed):
    # verify= on each request: a Session's verify loses to REQUESTS_CA_BUNDLE.
    rng = random.Random(seed)
    session = requests.Session()
    n = 0
    pending = False  # the last answer said Connection: close
    while not os.path.exists(stop_file):
        n += 1
        body = ("%d-%d " % (seed, n)) * rng.randint(1, 200)
        try:
            if n % 2:
                r = session.get(base + "/", timeout=10, verify=cafile)
                ok = r.status_code == 200 and r.text.startswith("handoff ")
                pid = r.text.split(" pid ")[1].split()[0] if ok else None
            else:
                r = session.post(base + "/echo", data=body, timeout=10, verify=cafile)
                ok = r.status_code == 200 and r.text == body
                pid = None
            error = None if ok else "status %d: %r" % (r.status_code, r.text[:200])
            close = r.headers.get("connection", "").lower() == "close"
        except Exception as e:  # every failure is counted, none retried
            ok, pid, error, close = False, None, "%s: %s" % (type(e).__name__, e), False
        with lock:
            if ok:
                totals["ok"] += 1
            else:
                totals["failed"] += 1
                if len(totals["errors"]) < 20:
                    totals["errors"].append(error)
            if pid is not None:
                totals["pids"][pid] = totals["pids"].get(pid, 0) + 1
            if close:
                totals["closes"] += 1
            # A close not yet followed by a request: urllib3 replaces
            # that connection only at the next one, which may not come.
            totals["pending_closes"] += int(close) - int(pending)
        pending = close
        time.sleep(rng.uniform(0, 0.3))


class ConnectionCounts(logging.Handler):
    """Counts urllib3's own record of the connections it opens and of the
    dropped ones it replaces."""

    def __init__(self, totals, lock):
        super().__init__(logging.DEBUG)
        self.totals, self.totals_lock = totals, lock

    def emit(self, record):
        message = record.getMessage()
        # Not self.lock: logging.Handler holds that one around emit.
        with self.totals_lock:
            if message.startswith("Starting new HTTP"):
                self.totals["connections"] += 1
            elif message.startswith("Resetting dropped connection"):
                self.totals["dropped"] += 1


def main():
    base, clients, stop_file, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    totals = {"ok": 0, "failed": 0, "errors": [], "pids": {}, "closes": 0, "connections": 0, "dropped": 0,
              "pending_closes": 0}
    lock = threading.Lock()
    pool_log = logging.getLogger("urllib3.connectionpool")
    pool_log.setLevel(logging.DEBUG)
    pool_log.propagate = False
    pool_log.addHandler(ConnectionCounts(totals, lock))
    threads = [
        threading.Thread(target=client, args=(base, stop_file, cafile, totals, lock, i))
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump(totals, sys.stdout)


main()

#!/usr/bin/python3
"""Pooled HTTP/1.1 clients for the HTTPS tests, on Python's `requests`
(Debian's python3-requests, urllib3 underneath), each in a thread with a
Session of its own: kept connections, a pause of 0-300 ms between requests,
`GET /` and `POST /echo` in turn, no retry (requests' default: a request
that fails on a kept connection is a failure, not retried). Runs until
STOP_FILE exists and prints one JSON object:

  {"ok": n, "failed": n, "errors": ["...", ...first 20...],
   "pids": {"pid": requests answered, ...}, "closes": n}

`closes` counts answers that said `Connection: close`.

usage: pooled_clients.py BASE_URL CLIENTS STOP_FILE CAFILE
"""

import json
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
        time.sleep(rng.uniform(0, 0.3))


def main():
    base, clients, stop_file, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    totals = {"ok": 0, "failed": 0, "errors": [], "pids": {}, "closes": 0}
    lock = threading.Lock()
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

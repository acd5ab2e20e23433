#!/usr/bin/python3
"""Server-sent-events clients for the long-lived tests, on Python's
`requests` (Debian's python3-requests), each in a thread: reads the event
stream, and when it ends, waits the `retry:` the server asked for and
reconnects with `Last-Event-ID`, as an EventSource does. Runs until
STOP_FILE exists and prints one JSON object:

  {"clients": [{"ids": [...every id received, in order...],
                "connections": [{"at", "pid", "generation", "first_event",
                                 "ended_at", "status"}],
                "retry_ms": last retry hint or null,
                "non_200": [statuses of answers other than 200]}]}

usage: sse_clients.py URL CLIENTS STOP_FILE
"""

import json
import os
import sys
import threading
import time

import requests


def client(url, stop_file, record):
    last_id = None
    retry_ms = 1000
    session = requests.Session()
    while not os.path.exists(stop_file):
        conn = {"at": time.time(), "pid": None, "generation": None,
                "first_event": None, "ended_at": None, "status": None}
        record["connections"].append(conn)
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        try:
            with session.get(url, headers=headers, stream=True, timeout=(5, 5)) as r:
                conn["status"] = r.status_code
                if r.status_code != 200:
                    # A browser's EventSource closes for good on any answer
                    # but 200: counted, and the test expects none. Going on
                    # (as EventSource would not) shows what follows.
                    record["non_200"].append(r.status_code)
                    time.sleep(0.1)
                    continue
                buffer = ""
                event = {}
                for chunk in r.iter_content(chunk_size=None, decode_unicode=True):
                    buffer += chunk
                    while "\n" in buffer:
                        line, buffer = buffer.split("\n", 1)
                        if line == "":
                            if "id" in event:
                                last_id = int(event["id"])
                                record["ids"].append(last_id)
                                data = json.loads(event["data"])
                                if conn["first_event"] is None:
                                    conn["first_event"] = time.time()
                                    conn["pid"] = data["pid"]
                                    conn["generation"] = data["generation"]
                            event = {}
                        elif line.startswith("retry: "):
                            retry_ms = int(line[len("retry: "):])
                            record["retry_ms"] = retry_ms
                        else:
                            field, _, value = line.partition(": ")
                            event[field] = value
                    if os.path.exists(stop_file):
                        break
        except requests.RequestException as e:
            record["errors"].append(repr(e))
        conn["ended_at"] = time.time()
        time.sleep(retry_ms / 1000)


def main():
    url, count, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    records = [{"ids": [], "connections": [], "retry_ms": None, "errors": [], "non_200": []}
               for _ in range(count)]
    threads = [threading.Thread(target=client, args=(url, stop_file, records[i]))
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump({"clients": records}, sys.stdout)


main()

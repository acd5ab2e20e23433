#!/usr/bin/python3
"""One HTTP/2 request with exactly the pseudo-headers and headers given, on
Python's h2 (Debian's python3-h2), over TLS (ALPN h2) or h2c with prior
knowledge; prints what came back as JSON: the response headers in order,
the body, and how the stream ended (its end, or the reset and its code).

usage: h2_frames.py HOST PORT tls|h2c NAME=VALUE... [--body=TEXT]
"""

import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    headers, body = [], None
    for arg in sys.argv[4:]:
        if arg.startswith("--body="):
            body = arg[len("--body="):].encode()
        else:
            name, value = arg.split("=", 1)
            headers.append((name, value))
    sock = socket.create_connection((host, port), timeout=10)
    if mode == "tls":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
        assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                         validate_outbound_headers=False,
                                         normalize_outbound_headers=False))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, headers, end_stream=body is None)
    if body is not None:
        conn.send_data(stream, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    result = {"headers": [], "body": "", "end": None}
    while result["end"] is None:
        data = sock.recv(65536)
        if not data:
            result["end"] = "connection closed"
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                result["headers"] = [[k, v] for k, v in event.headers]
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                result["body"] += event.data.decode("utf-8", "replace")
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                result["end"] = "end"
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                result["end"] = "reset %s" % h2.errors.ErrorCodes(event.error_code).name
            elif isinstance(event, h2.events.ConnectionTerminated):
                result["end"] = "goaway %s" % h2.errors.ErrorCodes(event.error_code).name
        sock.sendall(conn.data_to_send())
    print(json.dumps(result))


if __name__ == "__main__":
    main()

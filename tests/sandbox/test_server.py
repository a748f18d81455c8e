"""The sandbox's HTTP server: a thread per request and no Nagle stall on keep-alive connections."""

from __future__ import annotations

import socket
import threading

import requests

from sandbox.management.commands.runsandbox import QuietHandler, ThreadingServer


def test_it_disables_nagle_on_every_accepted_connection():
    # With Nagle on, each small response on a reused connection waited for the client's delayed
    # ACK (~40 ms), which inflated every latency the benchmark measured.
    seen: list[int] = []

    class RecordingHandler(QuietHandler):
        def setup(self):
            super().setup()
            seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = ThreadingServer(("127.0.0.1", 0), RecordingHandler)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with requests.Session() as http:
            for _ in range(3):
                assert http.get(f"http://127.0.0.1:{server.server_port}/", timeout=5).text == "ok"
    finally:
        server.shutdown()
        server.server_close()
    assert seen and all(flag != 0 for flag in seen)

"""A local website for tests that give image URLs: a threaded HTTP server on a free loopback port
answering each path from a table (status, content type, body, extra headers such as a redirect's
Location); anything else is a 404. Every path asked for is recorded in `hits`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Website:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.pages: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        self.hits: list[str] = []

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(
        self,
        path: str,
        body: bytes,
        content_type: str = "image/png",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> str:
        self.pages[path] = (status, content_type, body, headers or {})
        return self.base + path

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.add(path, b"", "text/plain", status, {"Location": location})


@contextmanager
def website(host: str = "127.0.0.1") -> Iterator[Website]:
    """Serves on `host` (any 127.x.y.z address is loopback on Linux)."""
    pages: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the stdlib's name
            hits.append(self.path)
            status, content_type, body, headers = pages.get(
                self.path, (404, "text/plain", b"not found", {})
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    site = Website(server)
    site.pages, site.hits = pages, hits
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()

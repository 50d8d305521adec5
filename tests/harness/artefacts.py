"""An HTTP server for release artefacts in tests: serves files from a directory with
`Range: bytes=N-` (206), can cut a response after `cut_after` bytes (the connection drops
mid-body), and answers 404 for what it does not have or 503 while `unavailable` is set. It
records every request's path and Range header."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path


class ArtefactServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cut_after: int | None = None  # bytes of body before the connection drops (once)
        self.unavailable = 0  # answer 503 to this many requests
        self.requests: list[tuple[str, str]] = []  # (path, Range header or "")
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range", "")
                server.requests.append((self.path, rng))
                if server.unavailable > 0:
                    server.unavailable -= 1
                    self.send_error(503)
                    return
                path = server.root / self.path.lstrip("/")
                if not path.is_file() or ".." in self.path:
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = int(rng[len("bytes=") :].split("-")[0]) if rng.startswith("bytes=") else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

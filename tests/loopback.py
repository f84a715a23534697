"""A shared test helper: an HTTP server on 127.0.0.1 whose answers a test function decides."""

import http.server
from collections.abc import Callable

Answer = tuple[int, dict[str, str | None], bytes]


def loopback_server(respond: Callable[[str, str], Answer]) -> http.server.ThreadingHTTPServer:
    """A server on a free loopback port (not yet serving) that answers `HEAD` and `GET` with
    `respond(method, path)` -> `(status, headers, body)`. Content-Length is sent unless a
    header set to None removes it (any header set to None is left out); `HEAD` sends no body.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self.answer(send_body=False)

        def do_GET(self) -> None:
            self.answer(send_body=True)

        def answer(self, send_body: bool) -> None:
            status, headers, body = respond(self.command, self.path)
            self.send_response(status)
            for key, value in ({"Content-Length": str(len(body))} | headers).items():
                if value is not None:
                    self.send_header(key, value)
            self.end_headers()
            if send_body:
                self.wfile.write(body)

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)

"""Static file server for the admin web UI, behind Envoy's /admin/scheduler/ route.

Serves the built UI (``web/dist``; ``ZQ_WEB_DIST`` overrides) at ``/admin/scheduler/``:

- unknown non-asset paths under /admin/scheduler/ get index.html (client-side routing);
- hashed files under ``assets/`` are cached for a year (``immutable``); index.html and other files
  are ``no-cache`` (revalidated with ETag / Last-Modified);
- only GET and HEAD; no directory listings; hidden files and paths outside the root are never served;
- while the UI is not built, a placeholder page says so.

Listens on 127.0.0.1:${ZQ_STATIC_PORT} (8001). Stops on SIGTERM / SIGINT. Run with
``python -m gateway.static_server``.
"""

from __future__ import annotations

import argparse
import email.utils
import html
import json
import logging
import mimetypes
import os
import shutil
import signal
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEB_DIST = ROOT / "web" / "dist"
PREFIX = "/admin/scheduler/"
INDEX = "index.html"

log = logging.getLogger("zquant.static")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
}
ASSET_CACHE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"

PLACEHOLDER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ZQuant Scheduler</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>ZQuant Scheduler</h1>
<p>The web UI is not built yet (no <code>{dist}</code>).
Run <code>make up</code>, which builds it, or build it with <code>npm run build</code> in <code>web/</code>.</p>
<p>The REST API is available under <code>/api/v1/</code>.</p>
</body></html>
"""


def content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


class StaticHandler(BaseHTTPRequestHandler):
    """GET/HEAD of the UI files; everything else is 404/405 with a JSON ``{"detail": ...}`` body."""

    server: StaticServer
    protocol_version = "HTTP/1.1"  # keep-alive: Envoy pools connections to this server
    server_version = "zquant-static"
    sys_version = ""
    timeout = 30  # seconds per socket read: a stuck client does not hold a thread forever

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _not_allowed(self) -> None:
        self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, "Method Not Allowed", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)

    # -- request handling -------------------------------------------------------------------------

    def _serve(self, *, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path)  # invalid UTF-8 becomes U+FFFD: matches no file
        if path == PREFIX.rstrip("/"):
            self._redirect(PREFIX)
            return
        if not path.startswith(PREFIX):
            self._send_error(HTTPStatus.NOT_FOUND, "Not Found")
            return
        relative = path[len(PREFIX) :]
        parts = [p for p in relative.split("/") if p]
        # Refuse anything that could leave the root or reach hidden files, before touching the disk.
        if "\\" in relative or "\x00" in relative or any(p.startswith(".") for p in parts):
            self._send_error(HTTPStatus.NOT_FOUND, "Not Found")
            return

        root = self.server.web_dist
        index = root / INDEX
        if not index.is_file():
            if not parts or not _looks_like_asset(parts):
                self._send_bytes(
                    PLACEHOLDER_PAGE.format(dist=html.escape(str(root))).encode(),
                    CONTENT_TYPES[".html"],
                    NO_CACHE,
                    send_body=send_body,
                )
            else:
                self._send_error(HTTPStatus.NOT_FOUND, "Not Found")
            return

        target = self._resolve(root, parts)
        if target is None:
            if _looks_like_asset(parts):
                self._send_error(HTTPStatus.NOT_FOUND, "Not Found")
                return
            target = index  # client-side route: the SPA decides
        cache = ASSET_CACHE if parts and parts[0] == "assets" and target != index else NO_CACHE
        self._send_file(target, cache, send_body=send_body)

    @staticmethod
    def _resolve(root: Path, parts: list[str]) -> Path | None:
        """The regular file under `root` named by `parts` (a directory means its index.html)."""
        try:
            root_real = root.resolve(strict=True)
            candidate = root_real.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not candidate.is_relative_to(root_real):
            return None  # e.g. a symlink pointing outside the root
        if candidate.is_dir():
            candidate = candidate / INDEX
        return candidate if candidate.is_file() else None

    # -- responses --------------------------------------------------------------------------------

    def _send_file(self, path: Path, cache: str, *, send_body: bool) -> None:
        try:
            handle = path.open("rb")
        except OSError:
            self._send_error(HTTPStatus.NOT_FOUND, "Not Found")
            return
        with handle:
            stat = os.fstat(handle.fileno())
            etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
            if self._not_modified(etag, stat.st_mtime):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("ETag", etag)
                self.send_header("Cache-Control", cache)
                self.end_headers()
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(stat.st_size))
            self.send_header("Cache-Control", cache)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if send_body:
                shutil.copyfileobj(handle, self.wfile, 64 * 1024)

    def _not_modified(self, etag: str, mtime: float) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return etag in [t.strip() for t in if_none_match.split(",")] or if_none_match.strip() == "*"
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since:
            try:
                since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return False
            return int(mtime) <= since
        return False

    def _send_bytes(
        self,
        body: bytes,
        ctype: str,
        cache: str,
        *,
        send_body: bool,
        status: HTTPStatus = HTTPStatus.OK,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_error(self, status: HTTPStatus, detail: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"detail": detail}).encode()
        self._send_bytes(
            body,
            "application/json",
            NO_CACHE,
            send_body=self._wants_body(),
            status=status,
            headers=headers,
        )

    def _redirect(self, location: str) -> None:
        self._send_bytes(
            b"",
            "text/plain; charset=utf-8",
            NO_CACHE,
            send_body=False,
            status=HTTPStatus.MOVED_PERMANENTLY,
            headers={"Location": location},
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Errors raised by BaseHTTPRequestHandler itself (bad request line, unsupported method, ...).
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        self._send_error(status, message or status.phrase, {"Connection": "close"})

    def _wants_body(self) -> bool:
        return getattr(self, "command", "") != "HEAD"


def _looks_like_asset(parts: list[str]) -> bool:
    """Files the browser loads by exact name: a miss is a 404, not the SPA's index.html."""
    return bool(parts) and (parts[0] == "assets" or "." in parts[-1])


class StaticServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], web_dist: Path) -> None:
        self.web_dist = web_dist
        super().__init__(address, StaticHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-response is normal; log it briefly, without a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("connection from %s ended: %s", client_address, exc)
        else:
            log.exception("error while serving %s", client_address)


def serve(host: str, port: int, web_dist: Path) -> None:
    """Serves until SIGTERM or SIGINT."""
    server = StaticServer((host, port), web_dist)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="static-http")
    thread.start()
    built = "built" if (web_dist / INDEX).is_file() else "NOT built: serving the placeholder page"
    log.info("serving %s (%s) at http://%s:%d%s", web_dist, built, host, port, PREFIX)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()  # from the main thread: serve_forever runs in `thread`
        server.server_close()
        thread.join(timeout=5)
        log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.static_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("ZQ_STATIC_PORT", "8001")))
    parser.add_argument(
        "--web-dist", type=Path, default=Path(os.environ.get("ZQ_WEB_DIST", DEFAULT_WEB_DIST))
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    serve(args.host, args.port, args.web_dist.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())

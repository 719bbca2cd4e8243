"""A small page for the usual headless Jetson: the live annotated stream (MJPEG), the current label
(or "no action"), the smoothed top classes, the event history, the model and source, and an ended
state. It has no authentication: it binds 127.0.0.1 unless the user names another address."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

# The page is static: everything that comes from a model (class names), a file name or a source
# reaches it only through /status as JSON, and the script puts it into the page as text
# (textContent), never as markup. The Content-Security-Policy forbids inline script and styles,
# inline event handlers and every origin but this one, so even a class name that slipped into
# markup could not run.
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>fts-edge live</title>
<link rel="stylesheet" href="/page.css"></head><body>
<div id="source"></div><div id="label">waiting for the first window...</div><div id="state"></div>
<div id="meta"></div><div class="row"><div class="video">
<img id="stream" src="/stream.mjpg" alt="live stream"></div>
<div><h3>top classes (smoothed)</h3><table id="top"></table><h3>regions and people</h3><table id="regions"></table>
<h3>events</h3><table id="events"></table></div></div>
<script src="/page.js"></script></body></html>"""

CSS = """body{font-family:sans-serif;background:#111;color:#eee;margin:1em}img{width:100%;max-width:640px}
#label{font-size:2em;margin:.3em 0}#top,#events,#regions{font-size:.95em;color:#bbb}#state{color:#fa0}
.row{display:flex;flex-wrap:wrap;gap:1.5em}.video{flex:1 1 480px;max-width:640px}h3{margin:.2em 0}
table{border-collapse:collapse}td{padding:0 .8em 0 0}"""

SCRIPT = """'use strict';
function text(id, value) { document.getElementById(id).textContent = value; }
function rows(id, items) {
  const table = document.getElementById(id);
  table.replaceChildren(...items.map(cells => {
    const tr = document.createElement('tr');
    for (const c of cells) { const td = document.createElement('td'); td.textContent = String(c); tr.appendChild(td); }
    return tr;
  }));
}
function pct(x) { return Math.round(100 * Number(x)) + '%'; }
async function tick() {
  let again = true;
  try {
    const s = await (await fetch('/status')).json();
    if (s.model) { text('source', s.source + ' \\u00b7 ' + s.model); }
    if (s.label) {
      text('label', s.label + ' ' + pct(s.score));
      text('meta', 'frame ' + s.frame + ' \\u00b7 ' + Number(s.latency_ms).toFixed(0) + ' ms \\u00b7 '
           + Number(s.classifications_per_s).toFixed(1) + ' classifications/s');
    }
    if (s.top) { rows('top', s.top.map(t => [t.label, pct(t.score)])); }
    if (s.regions) {
      text('label', s.regions.length + (s.regions.length === 1 ? ' region or person' : ' regions or people'));
      text('meta', 'frame ' + s.frame + ' \u00b7 ' + Number(s.latency_ms).toFixed(0) + ' ms \u00b7 '
           + Number(s.classifications_per_s).toFixed(1) + ' classifications/s');
      rows('regions', s.regions.map(r => [r.name, r.label, pct(r.score), 'at ' + r.box.join(',')]));
    }
    if (s.events) {
      rows('events', s.events.slice().reverse().map(e => ['frame ' + e.frame,
        e.region !== undefined ? e.region : (e.track_id !== undefined ? 'person ' + e.track_id : ''),
        e.phase, e.label, pct(e.score)]));
    }
    if (s.ended) { text('state', 'the source has ended (' + s.ended + '): this is its last window'); again = false; }
  } catch (e) { /* the app is restarting or gone: try again */ }
  if (again) { setTimeout(tick, 300); }
}
tick();
"""

# Sent with every response: no inline script or style, nothing from other origins, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def parse_serve(value: str) -> str:
    """HOST:PORT, [IPV6]:PORT or PORT (on 127.0.0.1: the page has no authentication) -> "host:port"."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        from ..core.errors import UsageError

        raise UsageError(f"--serve {value}: the port must be a number from 0 to 65535 (HOST:PORT, [::1]:PORT or PORT)")
    return f"{host}:{int(port)}"


class LiveServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 8080):
        self.jpeg = None
        self.status = {}
        self.cond = threading.Condition()
        self.closed = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", PAGE.encode())
                elif self.path == "/page.js":
                    self._send(200, "text/javascript; charset=utf-8", SCRIPT.encode())
                elif self.path == "/page.css":
                    self._send(200, "text/css; charset=utf-8", CSS.encode())
                elif self.path == "/status":
                    with server.cond:
                        body = json.dumps(server.status).encode()
                    self._send(200, "application/json", body)
                elif self.path.startswith("/stream.mjpg"):
                    self.send_response(200)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.send_header("Cache-Control", "no-cache")
                    self._security_headers()
                    self.end_headers()
                    last = None
                    try:
                        while not server.closed:
                            with server.cond:
                                server.cond.wait_for(lambda: server.jpeg is not last or server.closed, timeout=1.0)
                                jpg = server.jpeg
                            if jpg is None or jpg is last:
                                continue
                            last = jpg
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " +
                                             str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    self._send(404, "text/plain", b"not found")

            def _security_headers(self):
                for key, value in SECURITY_HEADERS.items():
                    self.send_header(key, value)

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")
                self._security_headers()
                self.end_headers()
                self.wfile.write(body)

        import socket

        from ..core.errors import FtsError

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
        try:
            self.httpd = server_class((host, port), Handler)
        except OSError as e:
            raise FtsError(f"--serve {host}:{port}: cannot listen there ({e.strerror or e}); "
                           "pick another port, or 127.0.0.1:0 for any free one")
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="live-server")
        self.thread.start()

    def set_status(self, **fields):
        """Merge fields into the status the page polls (the end of the source, for one)."""
        with self.cond:
            self.status = {**self.status, **fields}
            self.cond.notify_all()

    def update(self, img_bgr: np.ndarray, status: dict):
        import cv2

        ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
        with self.cond:
            self.jpeg = buf.tobytes()
            self.status = status
            self.cond.notify_all()

    def close(self):
        self.closed = True
        with self.cond:
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

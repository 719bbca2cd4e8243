"""A small page for the usual headless Jetson: the live annotated stream (MJPEG) and the current
label. Bound to 127.0.0.1 unless the user names another address."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>fts-edge live</title>
<style>body{font-family:sans-serif;background:#111;color:#eee;margin:1em}img{width:100%;max-width:960px}
#label{font-size:2em;margin:.3em 0}</style></head><body>
<div id="label">waiting for the first window...</div><div id="meta"></div>
<img id="stream" src="/stream.mjpg" alt="live stream">
<script>
async function tick(){try{const r=await fetch('/status');const s=await r.json();
if(s.label){document.getElementById('label').textContent=s.label+' '+Math.round(100*s.score)+'%';
document.getElementById('meta').textContent='frame '+s.frame+' \\u00b7 '+s.latency_ms.toFixed(0)+' ms \\u00b7 '
+s.classifications_per_s.toFixed(1)+' classifications/s';}}catch(e){}setTimeout(tick,300);}tick();
</script></body></html>"""


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
                    body = PAGE.encode()
                    self._send(200, "text/html; charset=utf-8", body)
                elif self.path == "/status":
                    with server.cond:
                        body = json.dumps(server.status).encode()
                    self._send(200, "application/json", body)
                elif self.path.startswith("/stream.mjpg"):
                    self.send_response(200)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.send_header("Cache-Control", "no-cache")
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

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        import socket

        from .errors import FtsError

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

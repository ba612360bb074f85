"""A webhook receiver for the tests, the fault suite and the fan-out benchmark."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from webhooks.signing import verify


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 that checks each POST's signature with `secrets[path]` (or `secret`),
    keeps what it got in `received`, and answers `status` (401 to a bad signature). With `hold` (an Event) the first
    POST waits on it before answering, so that a worker can die while it waits."""

    def __init__(self, status: int = 200, hold: threading.Event | None = None):
        self.status, self.hold, self.secret, self.secrets, self.received = status, hold, "", {}, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                name = self.path.strip("/")
                ok = verify(receiver.secrets.get(name, receiver.secret), self.headers["X-MLOps-Timestamp"], body,
                            self.headers["X-MLOps-Signature"])
                receiver.received.append({"ok": ok, "event": self.headers["X-MLOps-Event"], "path": name,
                                          "delivery": self.headers["X-MLOps-Delivery"], "body": json.loads(body)})
                if receiver.hold is not None and len(receiver.received) == 1:
                    receiver.hold.wait(60)
                self.send_response(receiver.status if ok else 401)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = self.url_for("hook")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url_for(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{name}"

    def close(self):
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()

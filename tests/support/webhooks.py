"""A webhook receiver: an HTTP server on loopback that records what ftdash sends it.

Notification tests point a channel at `Receiver().url` (with private webhooks allowed) and read
back the requests, their headers and bodies; `hold=True` keeps each answer back until the test
sets `answering`, to catch a sender between sending and recording.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from tests.support.loopback_server import PromptServer


class Receiver:
    """An HTTP server on loopback that records what it is sent and answers `status`.

    With `hold`, it records each request at once but answers only when `answering` is set;
    a request's record says how it was `answered` once it was.
    """

    def __init__(self, status: int = 200, location: str | None = None, delay: float = 0.0, hold: bool = False):
        self.status, self.location, self.delay = status, location, delay
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self.answering = threading.Event()
        if not hold:
            self.answering.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = {"path": self.path, "headers": dict(self.headers), "body": body}
                with receiver._lock:
                    receiver.requests.append(record)
                if receiver.delay:
                    time.sleep(receiver.delay)
                receiver.answering.wait(timeout=120)
                status = receiver.status
                try:
                    self.send_response(status)
                    if receiver.location:
                        self.send_header("Location", receiver.location)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the sender is gone (a test killed it) while its answer was held
                record["answered"] = status

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = PromptServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_until_stopped, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def bodies(self) -> list[bytes]:
        with self._lock:
            return [r["body"] for r in self.requests]

    def json(self) -> list[dict]:
        return [json.loads(body) for body in self.bodies]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop_serving()
        self.server.server_close()


@contextlib.contextmanager
def subscribed_receiver(*, workspace, actor, events: list[str]):
    """A Receiver with a team-wide webhook channel of `workspace` subscribed to `events`."""
    from jobs import services  # the app is set up by the time a test asks for a channel

    with Receiver() as receiver:
        services.channel_add(
            workspace=workspace, actor=actor, kind="webhook", target=receiver.url, events=events, personal=False
        )
        yield receiver

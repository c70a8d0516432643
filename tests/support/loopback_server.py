"""An HTTP server for a thread of the test process, which stops the moment it is told to.

socketserver's `serve_forever` notices `shutdown()` only at its next poll, and the fake Token
Factory and the webhook Receiver are started and stopped around hundreds of tests: a poll
interval of waiting each time adds up. `serve_until_stopped` is woken by `stop_serving`
instead. Only the standard library is used, like the fake that builds on it.
"""

from __future__ import annotations

import selectors
import socket
import threading
from http.server import ThreadingHTTPServer


class PromptServer(ThreadingHTTPServer):
    def server_activate(self) -> None:
        super().server_activate()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping = False
        self._stopped = threading.Event()

    def serve_until_stopped(self) -> None:
        """Accept connections (each answered in a thread of its own) until `stop_serving`."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_reader, selectors.EVENT_READ)
                while True:
                    ready = selector.select()
                    if self._stopping:
                        break
                    if any(key.fileobj is self for key, _ in ready):
                        self._handle_request_noblock()
        finally:
            self._stopped.set()

    def stop_serving(self) -> None:
        """Stop accepting and wait until the serving thread has (it may never have started)."""
        self._stopping = True
        self._wake_writer.send(b"\0")
        self._stopped.wait(timeout=5)

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

"""Redis of a test's own: a redis-server on a free port, and a TCP relay that can cut it off.

`RedisServer` starts and stops a real redis-server without persistence (a restart starts it
empty); `CuttableRelay` stands between ftdash and it, and when cut swallows every byte, as a
broken network does. The shared Redis of the Redis leg is never touched.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from pathlib import Path

import redis

from tests.support.server_process import free_port, stop_process
from tests.support.waiting import wait_for


class RedisServer:
    """A redis-server of the test's own, without persistence: a restart starts it empty."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, what="redis-server to answer")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def answers(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=2).ping()
        except redis.RedisError:
            return False

    def keys(self, pattern: str = "ftdash:*") -> list[bytes]:
        return redis.Redis(port=self.port, socket_timeout=2).keys(pattern)


class _Relayed:
    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client, self.upstream = client, upstream


class CuttableRelay:
    """A TCP relay to a port that can be cut: from then on it accepts connections and reads
    what is sent, and forwards and answers nothing, as a network that drops packets does.
    Connections made after `restore` are relayed again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_off = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.cut_off = True

    def restore(self) -> None:
        self.cut_off = False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = None if self.cut_off else socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()  # nothing behind the relay: refused, as a direct connection would be
                continue
            relayed = _Relayed(client, upstream)
            threading.Thread(target=self._to_upstream, args=(relayed,), daemon=True).start()
            if upstream is not None:
                threading.Thread(target=self._to_client, args=(relayed,), daemon=True).start()

    def _to_upstream(self, relayed: _Relayed) -> None:
        with contextlib.suppress(OSError):
            while data := relayed.client.recv(65536):
                if self.cut_off and relayed.upstream is not None:
                    relayed.upstream.close()  # what was on its way is lost; its answers never come
                    relayed.upstream = None
                if relayed.upstream is not None:
                    relayed.upstream.sendall(data)
        relayed.client.close()
        if relayed.upstream is not None:
            relayed.upstream.close()

    def _to_client(self, relayed: _Relayed) -> None:
        upstream = relayed.upstream
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                relayed.client.sendall(data)

    def close(self) -> None:
        self.listener.close()

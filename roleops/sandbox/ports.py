"""Sandbox (product, offline): every instance's metadata service at the root of a 127.0.0.1 port of its own."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

HOST = "127.0.0.1"  # never anything else: the sandbox hands out admin keys, and instances their role keys
# How often the metadata listener loop looks at its stop flag.
_SELECT_SECONDS = 0.2
# Binds tried for a port no earlier instance of this sandbox had (see MetadataPorts._fresh_socket).
_PORT_TRIES = 32


class _QuietImdsHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as EC2's IMDS

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # the sandbox logs nothing per request


class _MetadataServer(ThreadedWSGIServer):
    """One instance's metadata service at the root of its own port; one thread per connection."""

    # Closing the listener must not wait for the client's keep-alive connections (their threads are daemons).
    block_on_close = False

    def __init__(self, sock: socket.socket, app: Callable[[dict, Any], Any]) -> None:
        # Handed a bound socket (werkzeug dups its descriptor), werkzeug leaves bind errors to us: binding by
        # itself, it would print them and sys.exit().
        super().__init__(HOST, sock.getsockname()[1], app, _QuietImdsHandler, fd=sock.fileno())
        # Non-blocking: a connection reset between select and accept must not block the one accepting thread.
        self.socket.setblocking(False)


class MetadataPorts:
    """Every instance's metadata port on 127.0.0.1, all accepted by one thread over one selector: stop() costs
    one select timeout however many instances there are. Requests go to `serve(instance_id, environ,
    start_response)` with the instance its port was opened for. A port serves one instance for its life and,
    within one sandbox, is never handed to another instance: a stale endpoint is refused, not answered by
    somebody else's instance."""

    def __init__(self, serve: Callable[[str, dict, Any], Any]) -> None:
        self._serve = serve
        self._lock = threading.Lock()  # guards _servers and each listening socket against the loop
        self._servers: dict[str, _MetadataServer] = {}
        self._used_ports: set[int] = set()
        self._selector: selectors.BaseSelector | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._selector = selectors.DefaultSelector()
        self._thread = threading.Thread(
            target=self._loop, args=(self._selector,), name="roleops-sandbox-imds", daemon=True
        )
        self._thread.start()

    def open(self, instance_id: str) -> int:
        """Listen for `instance_id` on a fresh port picked by the OS; returns the port."""
        sock = self._fresh_socket()
        try:
            server = _MetadataServer(sock, partial(self._serve, instance_id))
        finally:
            sock.close()  # the server holds its own dup of the descriptor
        with self._lock:
            if self._selector is None:
                server.server_close()
                raise RuntimeError("the metadata listeners are not running")
            self._servers[instance_id] = server
            self._used_ports.add(server.port)
            self._selector.register(server.socket, selectors.EVENT_READ, (instance_id, server))
        return server.port

    def close_all(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
            for server in servers:
                if self._selector is not None:
                    self._selector.unregister(server.socket)
                server.server_close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.close_all()
        with self._lock:
            if self._selector is not None:
                self._selector.close()
                self._selector = None

    def _fresh_socket(self) -> socket.socket:
        held: list[socket.socket] = []  # ports this sandbox used before, kept bound so the OS picks others
        try:
            for _ in range(_PORT_TRIES):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.bind((HOST, 0))
                    sock.listen(128)
                except OSError:
                    sock.close()
                    raise
                if sock.getsockname()[1] not in self._used_ports:
                    return sock
                held.append(sock)
            raise OSError(f"no fresh 127.0.0.1 port for a metadata service after {_PORT_TRIES} tries")
        finally:
            for sock in held:
                sock.close()

    def _loop(self, selector: selectors.BaseSelector) -> None:
        while not self._stopping.is_set():
            if not selector.get_map():  # nothing to select on (select() on no descriptors fails on some systems)
                self._stopping.wait(_SELECT_SECONDS)
                continue
            for key, _ in selector.select(_SELECT_SECONDS):
                instance_id, server = key.data
                with self._lock:
                    # Closed while we selected: its socket is gone (and its descriptor may be another's now).
                    if self._servers.get(instance_id) is not server:
                        continue
                    try:
                        server.handle_request()  # accept one connection; a thread of its own serves it
                    except Exception:  # noqa: BLE001 - one bad accept must not end every instance's metadata
                        continue

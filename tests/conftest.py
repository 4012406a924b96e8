"""Shared fixtures: real Postfix sandboxes and hostile loopback SMTP servers."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from postharden.sandbox import Sandbox, postfix_available


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """`sandbox_factory(main_cf, master_cf=None, maps=..., files=...)` -> a started Sandbox,
    stopped at teardown. Skips (naming what is missing) without root or Postfix."""
    reason = postfix_available()
    if reason:
        pytest.skip(reason)
    started: list[Sandbox] = []

    def make(main_cf: str, master_cf: str | None = None, **kwargs: object) -> Sandbox:
        sandbox = Sandbox(main_cf, master_cf, **kwargs)  # type: ignore[arg-type]
        started.append(sandbox)
        sandbox.start()
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


Behaviour = Callable[[socket.socket], None]


@pytest.fixture
def loopback_server() -> Iterator[Callable[[Behaviour], int]]:
    """`loopback_server(behaviour)` -> port of a server on 127.0.0.1 that runs
    `behaviour(conn)` in a thread for every connection (hostile servers for probe tests)."""
    listeners: list[socket.socket] = []
    stop = threading.Event()

    def start(behaviour: Behaviour) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.2)
        listeners.append(listener)

        def serve_one(conn: socket.socket) -> None:
            with conn, contextlib.suppress(OSError):
                behaviour(conn)

        def accept_loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    stop.set()
    for listener in listeners:
        listener.close()

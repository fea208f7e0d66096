"""Serving the console with uvicorn: in the foreground (`wfctl serve`) or in a thread (`wfctl
local up`, tests), always on a port the caller chose (0 picks a free one)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from services.console.app import create_app
from services.core.errors import UserError
from services.core.settings import ConsoleSettings


def build_server(
    settings: ConsoleSettings, database_url: str, host: str, port: int
) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server and its already-bound socket (so port 0 is known before it starts)."""
    app = create_app(settings, database_url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False, lifespan="off")
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except socket.gaierror as error:
        sock.close()
        raise UserError("host", f"cannot resolve {host!r} ({error.strerror})") from None
    except OSError as error:
        sock.close()
        raise UserError("port", f"cannot listen on {host}:{port} ({error.strerror})") from None
    sock.set_inheritable(True)
    return server, sock


@dataclass
class BackgroundConsole:
    """The console in a daemon thread of this process; `stop()` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_in_thread(
    settings: ConsoleSettings, database_url: str, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0
) -> BackgroundConsole:
    server, sock = build_server(settings, database_url, host, port)
    bound_port = sock.getsockname()[1]
    # uvicorn installs signal handlers only in the main thread; this one never is.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    return BackgroundConsole(server=server, thread=thread, host=host, port=bound_port)

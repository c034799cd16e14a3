"""Run a fake upstream under uvicorn in a background thread (for tests) or in the foreground
(for benchmarks), and hand out URLs where nothing listens."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from tests.fakes.asgi import ASGIApp, DropConnection


class _HideDeliberateDrops(logging.Filter):
    """uvicorn logs an exception that escapes the app; a ``DropConnection`` is the fake doing
    its job (cutting a stream), not a bug, so keep it out of the test output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


def quiet_deliberate_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateDrops) for f in logger.filters):
        logger.addFilter(_HideDeliberateDrops())


def _loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        loop=_loop_name(),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    quiet_deliberate_drops()
    return config


class RunningFake:
    """A fake served by uvicorn on its own thread and event loop."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(uvicorn_config(app, host, self.port))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"fake:{self.port}",
            daemon=True,
        )

    def start(self, timeout: float = 10.0) -> RunningFake:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fake upstream on port {self.port} did not start")
            time.sleep(0.005)
        with socket.create_connection((self.host, self.port), timeout=timeout):
            pass
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._socket.close()

    def __enter__(self) -> RunningFake:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_fake(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> RunningFake:
    """Start ``app`` on ``host:port`` (0: any free port); returns once it accepts connections."""
    return RunningFake(app, host, port).start()


def refusing_url() -> str:
    """A URL on 127.0.0.1 where nothing listens, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"

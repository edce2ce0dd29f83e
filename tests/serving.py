"""A real `charrnn serve` process on an ephemeral port, for the server's tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "charrnn"]
# A server starts in a second or two here; on a machine running two test suites and a build at once
# its imports alone have taken most of a minute, so the wait is sized for that, not for an idle box.
START_TIMEOUT = 180


class Server:
    """`charrnn serve ARGS --port 0` in a subprocess; `.url` once it listens; `.stop()` sends
    SIGTERM and returns the exit code. stderr is collected in `.log` (a list of lines)."""

    def __init__(self, *args: object, env: dict[str, str] | None = None) -> None:
        self.args = [str(a) for a in args]
        self.log: list[str] = []
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [*CLI, "serve", *self.args, "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self._ready = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT) or not self.url:
            self.proc.kill()
            raise AssertionError("server did not start:\n" + "".join(self.log))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"serving on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def access_lines(self) -> list[str]:
        return [line for line in self.log if re.match(r"\S+ (GET|POST|DELETE|OPTIONS) /", line)]

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def served(trained: Path, tmp_path: Path):
    """Start servers of the trained test model; every one is stopped (and checked) at the end."""
    started: list[Server] = []

    def start(*extra: object, env: dict[str, str] | None = None, model: object = None) -> Server:
        srv = Server(model or trained, "--sessions", tmp_path / "sessions.sqlite", *extra, env=env)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        if srv.proc.poll() is None:
            assert srv.stop() == 0, "".join(srv.log)

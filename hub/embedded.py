"""The embedded MongoDB-wire store: a SecantusDB child process (GPL, so never imported)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM the store if the hub dies, so nothing is orphaned."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _binary() -> str:
    local = Path(sys.executable).with_name("secantusd-py")
    return str(local) if local.exists() else (shutil.which("secantusd-py") or "secantusd-py")


class EmbeddedStore:
    """A running `secantusd-py` on a loopback port; `url` is what PyMongo connects to."""

    def __init__(self, storage: str, port: int | None = None, log: Path | None = None) -> None:
        self.storage = storage
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> EmbeddedStore:
        if self.storage != ":memory:":
            Path(self.storage).mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [_binary(), "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", self.storage, "--log-level", "WARNING"],
            stdout=out, stderr=out, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"secantusd-py exited with {self.proc.returncode}; see {self.log}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("secantusd-py did not start in time")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def data_store(data_dir: Path) -> EmbeddedStore:
    """The persistent store of `./scripts/run` under `HUB_DATA_DIR`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return EmbeddedStore(str(data_dir / "store"), log=data_dir / "store.log")


if __name__ == "__main__":  # pragma: no cover
    store = EmbeddedStore(sys.argv[1] if len(sys.argv) > 1 else ":memory:").start()
    print(store.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()
    store.stop()
    os._exit(0)

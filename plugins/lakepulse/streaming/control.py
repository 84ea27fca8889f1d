"""Stopping a streaming job's driver so that its supervisor starts it again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from lakepulse.services.process import pid_alive


class CannotStopJob(RuntimeError):
    """The driver is out of reach of this machine (e.g. it runs in a cluster)."""


def stop_local_driver(pid: int | None, host: str | None, timeout: float = 60.0) -> str:
    """Stop a PySpark driver and the JVM that runs it: SIGTERM first (a clean stop lets Spark
    finish its batch), SIGKILL after ``timeout``. A hung (even SIGSTOPped) JVM is stopped too.

    Only a driver on this host can be stopped here; on a cluster the resource manager owns it.
    """
    if not pid:
        raise CannotStopJob("the heartbeat names no driver pid")
    if host != socket.gethostname():
        raise CannotStopJob(
            f"the driver runs on {host}, not on {socket.gethostname()}: stop the application "
            "through the cluster's resource manager (e.g. `yarn application -kill <app_id>`)"
        )
    if not pid_alive(pid):
        return f"driver pid {pid} had already exited"
    targets = [pid, *_java_parent(pid)]
    for target in targets:
        _signal(target, signal.SIGTERM)
        _signal(target, signal.SIGCONT)  # a stopped process acts on SIGTERM only once resumed
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = [p for p in targets if pid_alive(p)]
    for target in survivors:
        _signal(target, signal.SIGKILL)
    if survivors:
        return f"driver processes {targets} killed after {timeout:.0f}s without stopping"
    return f"driver processes {targets} stopped"


def _java_parent(pid: int) -> list[int]:
    """The JVM that launched a PySpark driver (spark-submit's PythonRunner), if any."""
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        command = Path(f"/proc/{parent}/cmdline").read_bytes()
    except (FileNotFoundError, IndexError, ValueError):
        return []
    return [parent] if b"java" in command.split(b"\0")[0] else []


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)

"""Start, watch and stop long-running local processes, each with a pid file and a log file.

A service is described by a :class:`ServiceSpec`; the functions here are the same for every
service, so Kafka, HDFS, Airflow and MLflow are started, checked and stopped alike.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lakepulse.log import get_logger

log = get_logger("services")


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: Sequence[str]
    health: Callable[[], Health]
    run_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    # Runs once before the first start (formatting storage, writing config files).
    prepare: Callable[[], None] | None = None
    start_timeout: float = 120.0

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"


class ServiceError(RuntimeError):
    """A service did not start, or did not become healthy in time."""


def read_pid(spec: ServiceSpec) -> int | None:
    """The service's pid, or None when it is not running.

    The pid file also holds the process's start time: after the service died, its pid may be
    given to an unrelated process, which must never be taken for it (and stopped).
    """
    try:
        pid_text, _, started = spec.pid_file.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    if not pid_alive(pid) or (started and started != process_start_time(pid)):
        return None
    return pid


def process_start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError):
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_until(
    check: Callable[[], Health], timeout: float, interval: float = 0.5, what: str = ""
) -> Health:
    """Poll ``check`` until it is healthy or ``timeout`` seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    result = check()
    while not result.ok and time.monotonic() < deadline:
        time.sleep(interval)
        result = check()
    if not result.ok:
        log.info("gave up waiting", what=what, timeout_s=timeout, detail=result.detail)
    return result


def start(spec: ServiceSpec) -> str:
    """Start ``spec`` unless it already runs; wait until healthy. Returns what was done."""
    return start_all([spec])[0]


def start_all(specs: Sequence[ServiceSpec]) -> list[str]:
    """Launch every spec that is not running, then wait for all of them to be healthy.

    Launching first and waiting after lets slow starters (Airflow's components) boot in
    parallel.
    """
    launched = {spec.name: launch(spec) for spec in specs if read_pid(spec) is None}
    outcomes = []
    for spec in specs:
        if spec.name in launched:
            outcomes.append(wait_started(spec, launched[spec.name]))
            continue
        health = wait_until(spec.health, spec.start_timeout, what=spec.name)
        if not health.ok:
            raise ServiceError(
                f"{spec.name} runs as pid {read_pid(spec)} but is not healthy: {health.detail}. "
                f"See {spec.log_file}; `make stop` then `make run` restarts it."
            )
        outcomes.append(f"{spec.name}: already running (pid {read_pid(spec)})")
    return outcomes


def launch(spec: ServiceSpec) -> subprocess.Popen:
    """Run the spec's preparation, then start its process detached, logging to its log file."""
    if spec.prepare is not None:
        spec.prepare()
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **spec.env}
    with open(spec.log_file, "ab") as out:
        process = subprocess.Popen(
            list(spec.command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
        )
    spec.pid_file.write_text(f"{process.pid} {process_start_time(process.pid)}")
    log.info("started", service=spec.name, pid=process.pid, log=str(spec.log_file))

    return process


def wait_started(spec: ServiceSpec, process: subprocess.Popen) -> str:
    """Wait until a launched service is healthy; fail at once when it exits."""

    def healthy_or_exited() -> Health:
        if process.poll() is not None:
            raise ServiceError(
                f"{spec.name} exited with code {process.returncode} while starting.\n"
                f"Last lines of {spec.log_file}:\n{_tail(spec.log_file)}"
            )
        return spec.health()

    health = wait_until(healthy_or_exited, spec.start_timeout, what=spec.name)
    if not health.ok:
        raise ServiceError(
            f"{spec.name} did not become healthy within {spec.start_timeout:.0f}s: "
            f"{health.detail}.\nLast lines of {spec.log_file}:\n{_tail(spec.log_file)}"
        )
    return f"{spec.name}: started (pid {process.pid})"


def stop(spec: ServiceSpec, timeout: float = 30.0) -> str:
    """Stop the service's whole process group: SIGTERM, then SIGKILL after ``timeout``."""
    pid = read_pid(spec)
    if pid is None:
        spec.pid_file.unlink(missing_ok=True)
        return f"{spec.name}: not running"
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        _signal_group(pid, signal.SIGKILL)
    _reap_group(pid)
    spec.pid_file.unlink(missing_ok=True)
    return f"{spec.name}: stopped"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap_group(pgid: int) -> None:
    """Kill what is left of the group (children that ignored SIGTERM)."""
    for _ in range(50):
        members = [p for p in _group_members(pgid) if pid_alive(p)]
        if not members:
            return
        for member in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
        time.sleep(0.1)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def status(spec: ServiceSpec) -> Health:
    pid = read_pid(spec)
    if pid is None:
        return Health(False, "not running")
    health = spec.health()
    return Health(health.ok, f"pid {pid}, {health.detail}")


def resident_memory_bytes(spec: ServiceSpec) -> int:
    """Sum of resident memory of the service's process group."""
    pid = read_pid(spec)
    if pid is None:
        return 0
    total = 0
    for member in _group_members(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            continue
    return total


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"

"""CPU time used by the benchmark's processes and by the whole machine, from /proc.

On a shared machine the CPU the others used during a step says how much of the two cores
the pipeline really had.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
MACHINE = "machine (all processes)"
OTHERS = "others (not this benchmark)"


def _stat_fields(pid_dir: Path) -> list[str] | None:
    try:
        return (pid_dir / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the members of a process group (with their waited-for
    children's)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry)
        # Fields after the command: [2] pgrp, [11] utime, [12] stime, [13] cutime, [14] cstime.
        if fields is not None and int(fields[2]) == pgid:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine was busy since boot (all CPUs: not idle, not iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / _TICKS


def snapshot(groups: Mapping[str, int | None]) -> dict[str, float]:
    """CPU seconds so far: each named process group, this process, its children, the machine.

    ``children`` are the processes this one started and waited for (the producer of a step).
    """
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    values = {name: group_cpu_seconds(pgid) for name, pgid in groups.items() if pgid is not None}
    values["benchmark (poller)"] = me.ru_utime + me.ru_stime
    values["producer"] = children.ru_utime + children.ru_stime
    values[MACHINE] = machine_busy_seconds()
    return values


def cores_used(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict:
    """CPU used per name over ``seconds``, in cores (1.0: one core busy all along), and what
    the machine's other processes used."""
    if seconds <= 0:
        return {}
    used = {name: (after[name] - before.get(name, 0.0)) / seconds for name in after}
    ours = sum(value for name, value in used.items() if name != MACHINE)
    used[OTHERS] = max(0.0, used.get(MACHINE, 0.0) - ours)
    return {name: round(value, 2) for name, value in used.items()}

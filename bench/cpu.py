"""CPU accounting of a run from /proc: what the server under test, PostgreSQL and the whole
machine used, so a reader sees what saturated the two cores (and what other work took)."""

from __future__ import annotations

import os
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds used so far) for every process on the machine."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return table


def _machine_busy() -> float:
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    return (sum(cpu[:8]) - idle) / TICKS


def _is_worker(pid: int) -> bool:
    """A uvicorn worker process (multiprocessing spawn), not the supervisor's resource tracker."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spawn_main" in f.read()
    except OSError:
        return False


def _descendants(table: dict[int, tuple[int, float]], root: int) -> set[int]:
    found = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


class CpuMeter:
    """CPU used during a run by the HTTP server's processes, by PostgreSQL's, and by the whole
    machine (so what other work on this shared machine took is visible too). A thread samples
    /proc every 0.2 s, so processes that start and end within the run (pgbench's backends)
    are counted too, up to their last 0.2 s."""

    def __init__(self, server_pid: int, postgres_pid: int) -> None:
        self.server_pid, self.postgres_pid = server_pid, postgres_pid
        self.before = _proc_table()
        self.last = dict(self.before)
        self.busy_before = _machine_busy()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.last.update(_proc_table())

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.last.update(_proc_table())
        busy = _machine_busy() - self.busy_before
        wall = time.monotonic() - self.started

        def used(root: int) -> float:
            pids = _descendants(self.last, root)
            return sum(self.last[p][1] - self.before.get(p, (0, 0.0))[1] for p in pids)

        # With several workers, the least busy one's CPU over the busiest one's: near 1 when the
        # kernel spread the load generator's connections, near 0 when one worker accepted them all.
        workers = [
            used(pid) for pid, (ppid, _) in self.last.items() if ppid == self.server_pid and _is_worker(pid)
        ]
        balance = min(workers) / max(workers) if len(workers) > 1 and max(workers) > 0 else 1.0
        return {
            "worker_balance": balance,
            "server_cpu_pct": 100.0 * used(self.server_pid) / wall,
            "postgres_cpu_pct": 100.0 * used(self.postgres_pid) / wall,
            "machine_cpu_pct": 100.0 * busy / wall,
        }

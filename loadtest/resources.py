"""CPU and memory per component (gateways, ingest workers, alert worker, Mosquitto, InfluxDB, the load test
itself), sampled from the operating system with psutil: CPU seconds used (user + system), the share of a core
over each interval, resident memory now and at its peak (Linux's high-water mark, VmHWM, where there is one)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ComponentSample:
    cpu_percent: float  # of one core, summed over the component's processes, over the last interval
    rss_mb: float  # resident memory now, summed


@dataclass(slots=True)
class ComponentUsage:
    processes: int = 0
    cpu_s: float = 0.0  # CPU seconds used while watched, all processes
    peak_cpu_percent: float = 0.0
    peak_rss_mb: float = 0.0  # the largest peak of one process
    total_peak_rss_mb: float = 0.0  # the component's processes' peaks summed
    watched_s: float = 0.0  # wall seconds the CPU seconds were counted over


def _peak_rss_mb(process: psutil.Process, rss_mb: float) -> float:
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return max(rss_mb, int(line.split()[1]) / 1024)
    except OSError:
        pass
    return rss_mb


@dataclass(slots=True)
class _Watched:
    component: str
    process: psutil.Process
    cpu_s: float = 0.0
    first_cpu_s: float | None = None
    peak_rss_mb: float = 0.0
    alive: bool = True


@dataclass
class ResourceWatch:
    """Register processes by component as they start; ``sample()`` each interval; ``usage()`` at the end.
    A process that ended keeps what was last seen of it."""

    _watched: dict[int, _Watched] = field(default_factory=dict)
    _last_sample: float = field(default_factory=time.monotonic)
    _counted_from: float = field(default_factory=time.monotonic)

    def watch(self, component: str, pid: int) -> None:
        try:
            process = psutil.Process(pid)
            watched = _Watched(component, process)
            times = process.cpu_times()
            watched.cpu_s = watched.first_cpu_s = times.user + times.system
        except psutil.Error:
            return
        self._watched[pid] = watched

    def rebase(self) -> None:
        """Count CPU from now on (the run proper), not what the processes spent starting."""
        for watched in self._watched.values():
            watched.first_cpu_s = watched.cpu_s
        self._counted_from = self._last_sample

    def components(self) -> list[str]:
        return sorted({w.component for w in self._watched.values()})

    def sample(self) -> dict[str, ComponentSample]:
        """Each component's CPU over the time since the last sample, and its memory now."""
        now = time.monotonic()
        interval_s, self._last_sample = now - self._last_sample, now
        cpu: dict[str, float] = defaultdict(float)
        rss: dict[str, float] = defaultdict(float)
        for watched in self._watched.values():
            cpu[watched.component] += 0.0
            rss[watched.component] += 0.0
            if not watched.alive:
                continue
            try:
                with watched.process.oneshot():
                    times = watched.process.cpu_times()
                    now_rss = watched.process.memory_info().rss / MIB
            except psutil.Error:
                watched.alive = False
                continue
            used = times.user + times.system
            cpu[watched.component] += max(0.0, used - watched.cpu_s) / interval_s * 100 if interval_s > 0 else 0.0
            rss[watched.component] += now_rss
            watched.cpu_s = used
            watched.peak_rss_mb = max(watched.peak_rss_mb, _peak_rss_mb(watched.process, now_rss))
        return {name: ComponentSample(round(cpu[name], 1), round(rss[name], 1)) for name in cpu}

    def usage(self, peaks: dict[str, float]) -> dict[str, ComponentUsage]:
        """Per component over the whole watch; ``peaks``: the highest CPU percent seen in the samples."""
        out: dict[str, ComponentUsage] = {}
        for watched in self._watched.values():
            usage = out.setdefault(watched.component, ComponentUsage())
            usage.processes += 1
            usage.cpu_s += watched.cpu_s - (watched.first_cpu_s or 0.0)
            usage.peak_rss_mb = max(usage.peak_rss_mb, watched.peak_rss_mb)
            usage.total_peak_rss_mb += watched.peak_rss_mb
        for name, usage in out.items():
            usage.peak_cpu_percent = peaks.get(name, 0.0)
            usage.cpu_s = round(usage.cpu_s, 2)
            usage.watched_s = round(self._last_sample - self._counted_from, 1)
            usage.peak_rss_mb = round(usage.peak_rss_mb, 1)
            usage.total_peak_rss_mb = round(usage.total_peak_rss_mb, 1)
        return out

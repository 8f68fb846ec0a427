"""Benchmark (not a test): what the alert engine costs per message as the fleet grows, and what a commit costs.

A generated plant of the load test's kind (the county's mix, 500 machines per workshop, the load test's injected
faults) runs through the gateway core as the runner drives it (first readings and metas, a birth, reads every
tick, heartbeats, windows and roll-ups, telemetry spread over the interval), every gateway ticking together, and
the engine takes their messages as the alert worker does. The first minutes are a warm-up (births re-state every
machine, metas, first windows); then each message's ``Engine.observe`` is timed (only that: making the messages
is not counted). The same messages go to an engine that judges every subject at every message (``rescan``, the
engine before it was incremental), started from a copy of the same state, for as many messages as it manages in
a few seconds. Printed per fleet size: messages per plant second, mean / p50 / p99 / max per message and by kind
for both, subjects judged per message, the share of one core the engine needs at real time; and a commit of
``flush_max_messages`` messages: the rows of what changed against the whole state serialised (as before).

    python bench/alerts.py [--machines 1000 60000] [--warmup-min 2] [--minutes 2] [--rescan-s 20]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from alerts.engine import Engine, EngineState
from alerts.lifecycle import AlertRecord
from alerts.rows import changed_rows
from alerts.rules import load_config
from alerts.store import Store
from ftel.contract.models import Message
from ftel.plant.layout import Plant
from gateway.core import GatewayCore, GatewayTiming, SpoolCounts
from gateway.tracker import Origin
from loadtest.faults import plan_faults
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from simulators.plant import generate_plant

console = Console()
START_MS = 1_795_402_800_000  # a whole hour, as the tests' pinned starts
TICK_MS = 2_000  # the gateways' reads, in plant time (a tick covers at most a heartbeat interval)
TIMING = GatewayTiming(window_ms=60_000, telemetry_interval_ms=30_000, heartbeat_interval_ms=10_000, tick_s=0,
                       telemetry_spread=True)  # fmt: skip


class Gateway:
    """One workshop's gateway core with its simulated machines, stepped by the caller."""

    def __init__(self, plant: Plant, workshop: str, index: int) -> None:
        ws = plant.workshop(workshop)
        models = plant_models(plant, start_ms=START_MS, workshop=workshop)
        self.drivers = {m.spec.id: SimulatedDriver(m) for _, m in models}
        infos = [d.info for d in self.drivers.values()]
        self.core = GatewayCore(Origin(plant.site, workshop, ws.gateway_id), infos, TIMING, boot_id=START_MS + index)
        self.last = START_MS
        self.born = False

    def read(self, at_ms: int) -> list[Message]:
        return list(self.core.observe(at_ms, {mid: d.read(at_ms) for mid, d in self.drivers.items()}))

    def first(self) -> list[Message]:
        return [*self.read(START_MS), *self.core.metas(START_MS)]

    def step(self, until_ms: int) -> list[Message]:
        out: list[Message] = []
        for at in self.core.read_times(self.last, until_ms):
            out.extend(self.read(at))
        beat = self.core.heartbeat(self.last, until_ms, uptime_ms=until_ms - START_MS, spool=SpoolCounts(0, 0))
        if beat is not None:
            out.append(beat)
        self.last = until_ms
        if not self.born:  # connected during the first tick: the birth re-states every machine after the reads
            out.extend([self.core.birth(), *self.core.metas(until_ms)])
            self.born = True
        return out


def stream(plant: Plant, minutes: float) -> Iterator[tuple[int, Message]]:
    """(plant ms, message) of every gateway, tick by tick, as one subscriber receives them."""
    gateways = [Gateway(plant, w.id, i) for i, w in enumerate(plant.workshops)]
    for gateway in gateways:
        for message in gateway.first():
            yield START_MS, message
    end = START_MS + int(minutes * 60_000)
    now = START_MS
    while now < end:
        now += TICK_MS
        for gateway in gateways:
            for message in gateway.step(now):
                yield now, message


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Timed:
    """Microseconds per message, overall and by message kind."""

    costs: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def observe(self, engine: Engine, message: Message) -> list[AlertRecord]:
        start = time.perf_counter_ns()
        out = engine.observe(message)
        spent = (time.perf_counter_ns() - start) / 1000
        self.costs.append(spent)
        self.by_kind[type(message).__name__].append(spent)
        return out

    def mean(self) -> float:
        return statistics.fmean(self.costs)

    def spread(self) -> str:
        c = self.costs
        return f"{self.mean():,.1f} / {percentile(c, 0.5):,.1f} / {percentile(c, 0.99):,.1f} / {max(c):,.0f}"

    def kinds(self) -> str:
        return ", ".join(f"{k} {statistics.fmean(v):,.0f}" for k, v in sorted(self.by_kind.items()))


@dataclass
class Commits:
    """Commits of the rows of what changed, every ``every`` messages, into a store like the worker's."""

    store: Store
    every: int
    spent_s: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def commit(self, engine: Engine) -> None:
        start = time.perf_counter_ns()
        rows = changed_rows(engine.state, engine.take_changes())
        self.store.commit(rows.head, [], upserts=rows.upserts, deletes=rows.deletes)
        self.spent_s.append((time.perf_counter_ns() - start) / 1e9)
        self.rows.append(len(rows.upserts) + len(rows.deletes))
        self.sizes.append(sum(len(body) for *_, body in rows.upserts) + len(rows.head))

    def whole(self, engine: Engine) -> str:
        """The whole state serialised and committed, as every commit did before."""
        start = time.perf_counter_ns()
        whole = engine.state.model_dump_json()
        self.store.commit(whole, [])
        return f"{len(whole) / 1e6:,.1f} MB, {(time.perf_counter_ns() - start) / 1e6:,.0f} ms"

    def summary(self) -> str:
        if not self.rows:
            return "-"
        rows, size = statistics.fmean(self.rows), statistics.fmean(self.sizes) / 1000
        return f"{rows:,.0f} rows, {size:,.0f} kB, {statistics.fmean(self.spent_s) * 1000:.1f} ms"


def warmed_up(machines: int, minutes: float, warmup_min: float) -> tuple[Engine, Iterator[tuple[int, Message]]]:
    """An engine that has taken the warm-up's messages, and the rest of the stream."""
    config = load_config()
    base = generate_plant(machines, per_workshop=500, site="bench")
    plant = plan_faults(base, config, int((warmup_min + minutes) * 60)).with_faults(base)
    engine = Engine(config)
    warm_until = START_MS + int(warmup_min * 60_000)
    messages = stream(plant, warmup_min + minutes)
    t0, warm = time.perf_counter(), 0
    for at, message in messages:
        engine.observe(message)
        warm += 1
        if at >= warm_until:
            break
    console.print(f"  {machines:,} machines: warmed up on {warm:,} messages in {time.perf_counter() - t0:.0f} s")
    engine.take_changes()
    return engine, messages


def measure(machines: int, *, warmup_min: float, minutes: float, rescan_s: float, flush_every: int) -> dict[str, str]:
    engine, messages = warmed_up(machines, minutes, warmup_min)
    reference = Engine(engine.config, EngineState.model_validate(engine.state.model_dump()), rescan=True)
    reference.observe(next(messages)[1])  # judges every subject once anyway (a restart): not counted
    gc.collect()
    gc.freeze()  # the fleet's state is long-lived: keep the collector from walking it while timing
    incremental, rescan = Timed(), Timed()
    judged_before = engine.judged
    transitions = Counter[str]()
    first_ms = last_ms = 0
    with tempfile.TemporaryDirectory() as tmp:
        commits = Commits(Store(Path(tmp) / "bench.sqlite"), flush_every)
        for at, message in messages:
            first_ms, last_ms = first_ms or at, at
            transitions.update(r.status.value for r in incremental.observe(engine, message))
            if sum(rescan.costs) < rescan_s * 1e6:
                rescan.observe(reference, message)
            if len(incremental.costs) % flush_every == 0:
                commits.commit(engine)
        whole = commits.whole(engine)
        commits.store.close()
    gc.unfreeze()
    count = len(incremental.costs)
    plant_s = max(1.0, (last_ms - first_ms) / 1000)
    rate = count / plant_s
    console.print(f"  by kind, incremental (µs): {incremental.kinds()}")
    console.print(f"  by kind, rescan (µs, {len(rescan.costs):,} messages): {rescan.kinds()}")
    return {
        "machines": f"{machines:,}",
        "messages timed": f"{count:,} over {plant_s:.0f} plant s",
        "messages / plant s": f"{rate:,.0f}",
        "transitions": ", ".join(f"{n} {s}" for s, n in sorted(transitions.items())) or "none",
        "incremental µs/message mean / p50 / p99 / max": incremental.spread(),
        "subjects judged / message": f"{(engine.judged - judged_before) / count:.2f}",
        "heap: subjects waiting": f"{engine.waiting():,}",
        "rescan µs/message mean / p50 / p99 / max": f"{rescan.spread()} ({len(rescan.costs):,} messages)",
        "rescan ÷ incremental (mean)": f"{rescan.mean() / incremental.mean():,.0f}×",
        "cores at real time: incremental / rescan": (
            f"{rate * incremental.mean() / 1e6:.3f} / {rate * rescan.mean() / 1e6:,.2f}"
        ),
        f"commit every {flush_every} messages (rows of what changed)": commits.summary(),
        "commit of the whole state (as before)": whole,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, nargs="+", default=[1_000, 60_000])
    parser.add_argument("--warmup-min", type=float, default=2.0, help="plant minutes before timing")
    parser.add_argument("--minutes", type=float, default=2.0, help="plant minutes timed")
    parser.add_argument("--rescan-s", type=float, default=20.0, help="seconds the rescanning engine may take")
    parser.add_argument("--flush-every", type=int, default=load_config().worker.flush_max_messages)
    args = parser.parse_args()
    results = []
    for machines in args.machines:
        results.append(
            measure(
                machines,
                warmup_min=args.warmup_min,
                minutes=args.minutes,
                rescan_s=args.rescan_s,
                flush_every=args.flush_every,
            )
        )
        table = Table(title="alert engine: cost per message (µs, this machine's wall time of Engine.observe)")
        table.add_column("")
        for result in results:
            table.add_column(result["machines"] + " machines", justify="right")
        for key in results[0]:
            if key != "machines":
                table.add_row(key, *(r[key] for r in results))
        console.print(table)


if __name__ == "__main__":
    main()

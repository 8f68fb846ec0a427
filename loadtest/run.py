"""The load test's shell: set up the plant and the services, start every process, watch, judge, report.

Each component runs as it is deployed, as its own process through the `ftel` command: gateways (`ftel simulate
run --workshops …`, a share of the plant each, on one plant clock), ingest workers (`ftel ingest --worker-id
ingest-N`) and the alert worker (`ftel alerts run`); each connects as its own identity. The load test watches
from outside: the operating system for CPU and memory, the broker for heartbeats, health and alerts, InfluxDB
for the verdict at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.live import Live

from alerts.rules import load_config
from ftel.children import Interrupts, spawn, stop_summary
from ftel.histogram import Histogram
from ftel.plant.layout import Plant, dump_plant
from ftel.ready import Readiness, ready_env, wait_ready
from ftel.security.credentials import credential_env, load_credentials, with_identity
from ftel.security.identities import ALERTS, SUPERVISOR, gateway, ingest_identity, roster
from ftel.settings import AuthSettings, InfluxSettings, MqttSettings, Settings, StackSettings
from ftel.stack import LocalStack
from ftel.storage.query import InfluxQuery
from loadtest.aims import Aims
from loadtest.check import expected_figures, stored_figures
from loadtest.errors import LoadTestError
from loadtest.faults import FaultPlan, plan_faults
from loadtest.health import WorkerHealth, merge_latency
from loadtest.live import progress_line, progress_table
from loadtest.monitor import Monitor, WireView, wall_ms
from loadtest.plan import (
    ClockPlan,
    GatewayShare,
    auto_gateway_processes,
    clock_plan,
    share_workshops,
    start_lead_ms,
)
from loadtest.report import write_outputs
from loadtest.resources import ResourceWatch
from loadtest.spools import left_in_spools
from loadtest.summary import LATENCY_WARMUP_MS, RunFacts, alert_latencies, build_summary
from loadtest.verdict import Verdict, compare
from simulators.plant import generate_plant

log = logging.getLogger(__name__)

Target = Literal["local", "settings"]
# Workers publish their health this often during a load test (the live view's and the timeline's resolution).
HEALTH_INTERVAL_S = 1.0
READY_TIMEOUT_S = 90.0
# The simulated gateways stand for hardware in the workshops, not for the server under test: they run at a lower
# priority, so that the pipeline gets the CPU it needs first (Linux shares a core by runnable threads, and a
# county's gateway processes have more of them than the one-threaded workers). They must still keep plant time:
# what they send late is late in the latencies, which are measured from the messages' own timestamps.
GATEWAY_NICE = 10
# After the plant's end, gateways drain what is unconfirmed; past this (or half the run, if longer) they are
# stopped and the run fails.
DRAIN_ALLOWANCE_S = 300.0
# After the gateways, how long to wait for the workers' last health and for the injected faults' alerts.
SETTLE_S = 60.0
STOP_TIMEOUT_S = 60.0
STOP_POLL_S = 0.2
PLAIN_EVERY_S = 30.0


@dataclass(frozen=True)
class LoadTestOptions:
    machines: int
    duration_ms: int
    out: Path
    per_workshop: int = 500
    workers: int = 2
    gateway_processes: int | None = None
    speedup: float = 1.0
    faults: bool = True
    target: Target = "local"
    rules: Path | None = None
    sample_s: float = 2.0
    keep_data: bool = False
    alert_wait_s: float = SETTLE_S
    aims: Aims = field(default_factory=Aims)


class _StopAsked(Exception):
    """Ctrl-C (or SIGTERM) during the run: stop every process in the order the data flows."""


class _Interrupted(Exception):
    """The run was stopped before its end; ``summary`` says what was left."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


@dataclass
class _Processes:
    logs: Path
    env: dict[str, str]
    interrupts: Interrupts
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], *, nice: int = 0) -> subprocess.Popen[bytes]:
        """A process of the run, out of the terminal's reach: Ctrl-C is the load test's to handle, in order. A
        worker among them says when it is ready in its own file (ftel/ready.py)."""
        env = self.env | ready_env(self._ready_file(name))
        with (self.logs / f"{name}.log").open("ab") as out:
            process = spawn(args, env=env, stdout=out, stderr=subprocess.STDOUT, nice=nice)
        self.running[name] = process
        return process

    def pause(self, seconds: float) -> None:
        if self.interrupts.stop.wait(seconds):
            raise _StopAsked

    def _ready_file(self, name: str) -> Path:
        return self.logs / f"{name}.ready"

    def wait_ready(self, names: list[str]) -> None:
        """Each named worker has said it is ready (its subscriptions are granted)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for name in names:
            left = max(0.0, deadline - time.monotonic())
            process = self.running[name]
            readiness = wait_ready(self._ready_file(name), process, timeout_s=left, stop=self.interrupts.stop)
            if readiness is Readiness.STOPPED:
                raise _StopAsked
            if readiness is not Readiness.READY:
                path = self.logs / f"{name}.log"
                tail = path.read_text(errors="replace")[-1500:]
                raise LoadTestError(f"{name} did not start ({readiness}; see {path}); its log ends:\n{tail}")

    def stop(self, names: list[str], *, waiting: Callable[[], None] = lambda: None) -> None:
        """SIGTERM each, then wait while they finish their work (``waiting`` says what for); at once (SIGKILL)
        on a second Ctrl-C or past STOP_TIMEOUT_S."""
        chosen = [self.running[name] for name in names if name in self.running]
        for process in chosen:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(process.poll() is None for process in chosen):
            if self.interrupts.abort.is_set() or time.monotonic() > deadline:
                for process in chosen:
                    process.kill()
                    process.wait()
                return
            waiting()
            self.interrupts.abort.wait(STOP_POLL_S)

    def kill_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)


def child_env(settings: Settings, *, inherit_connection: bool, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every process of the run. On the local stack the connection and credentials come
    from the stack only (FTEL_MQTT__*, FTEL_INFLUX__*, FTEL_AUTH__*, FTEL_STACK__* and FTEL_CONFIG of the
    caller are dropped; other FTEL_* tuning stays); on the settings' services everything is inherited."""
    dropped = ("FTEL_MQTT__", "FTEL_INFLUX__", "FTEL_AUTH__", "FTEL_STACK__", "FTEL_CONFIG")
    env = {k: v for k, v in os.environ.items() if inherit_connection or not k.startswith(dropped)}
    if not inherit_connection:
        env |= {
            "FTEL_MQTT__HOST": settings.mqtt.host,
            "FTEL_MQTT__PORT": str(settings.mqtt.port),
            "FTEL_INFLUX__URL": settings.influx.url,
            "FTEL_INFLUX__DATABASE": settings.influx.database,
            "FTEL_INFLUX__RETENTION_POLICY": settings.influx.retention_policy,
            "FTEL_AUTH__CREDENTIALS_FILE": str(settings.credentials_file.resolve()),
            "FTEL_STACK__DIR": str(settings.stack.dir.resolve()),
            **credential_env(settings),
        }
    return env | {"FTEL_SITE": settings.site, **extra}


def check_identities(settings: Settings, plant: Plant, workers: int, plant_file: Path) -> None:
    """On the settings' services every process connects as its own identity from the credentials file: say
    exactly what to do when some are missing."""
    if settings.mqtt.username is not None:
        log.warning(
            "FTEL_MQTT__USERNAME is set: every process of the load test connects as %s; a broker that takes the "
            "username as the client id (ftel's Mosquitto does) lets only one of them stay connected. Give each "
            "its own identity in the credentials file instead",
            settings.mqtt.username,
        )
    path = settings.credentials_file
    if not path.exists():
        log.warning("no credentials file at %s: every process connects without credentials", path)
        return
    known = load_credentials(path).identities
    wanted = roster([gateway(w.gateway_id, plant.site, w.id) for w in plant.workshops], workers)
    missing = [i.name for i in wanted if i.name not in known]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise LoadTestError(
            f"the credentials file {path} has no identity for {shown}. Add them with "
            f"`ftel auth init --plant {plant_file} --ingest-workers {workers}` and load the Mosquitto password "
            f"and ACL files written beside it into your broker, then run the load test again (with a new --out)"
        )


class LoadTest:
    def __init__(self, options: LoadTestOptions, settings: Settings, console: Console) -> None:
        self.options = options
        self.settings = settings
        self.console = console
        self.out = options.out
        self.logs = options.out / "logs"
        self.config = load_config(options.rules)
        base = generate_plant(options.machines, site=settings.site, per_workshop=options.per_workshop)
        window_ms = settings.simulation.window_s * 1000
        self.window_ms = window_ms
        duration_s = clock_plan(now_ms=0, duration_ms=options.duration_ms, speedup=1, window_ms=window_ms).duration_ms
        self.fault_plan = plan_faults(base, self.config, duration_s // 1000) if options.faults else FaultPlan()
        self.plant = self.fault_plan.with_faults(base)
        processes = options.gateway_processes or auto_gateway_processes(
            self.plant.machine_count, len(self.plant.workshops)
        )
        self.shares = share_workshops([(w.id, len(w.machines)) for w in self.plant.workshops], processes)
        self.workers = [ingest_identity(n) for n in range(1, options.workers + 1)]
        self.watch = ResourceWatch()
        self.timeline: list[dict[str, Any]] = []
        self.latency_at_warmup: Histogram | None = None  # the workers' merged latency when the warm-up ended
        self.latency_before_stop: Histogram | None = None  # ... and last sampled before the plant's end
        self.latency_sampled = Histogram()  # the workers' merged latency at the last sample
        self.cpu_peaks: dict[str, float] = {}
        self.stack: LocalStack | None = None
        self.began_ms = 0

    # -- the whole run -------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.logs.mkdir(parents=True, exist_ok=True)
        plant_file = self.out / "plant.yaml"
        plant_file.write_text(dump_plant(self.plant))
        try:
            with self._services(plant_file) as settings:
                summary = self._run(settings, plant_file)
        except _Interrupted as stopped:
            self.console.print(stopped.summary, highlight=False)
            raise KeyboardInterrupt from None
        # Once the services have stopped: only the plant, logs, summary and report stay (the data can be GBs), the
        # servers' logs among them (a Go runtime trace of InfluxDB, GODEBUG=gctrace=1, is in influxdb.out).
        if self.stack is not None:
            with contextlib.suppress(OSError):  # a log not kept must not undo the verdict or the clean-up
                for path in self.stack.log_files():
                    shutil.copyfile(path, self.logs / path.name)
                # When InfluxDB wrote each data file (a new one is a snapshot of its cache, or a compaction's):
                # what a late sample of the timeline is compared with.
                (self.logs / "influxdb-files.txt").write_text(file_listing(self.stack.influxdb.directory / "data"))
        if summary["passed"] and not self.options.keep_data:
            for path in (self.out / "gateways", self.out / "alerts", self.out / "stack"):
                shutil.rmtree(path, ignore_errors=True)
        return summary

    @contextlib.contextmanager
    def _services(self, plant_file: Path) -> Iterator[Settings]:
        if self.options.target == "settings":
            check_identities(self.settings, self.plant, len(self.workers), plant_file)
            yield self.settings.model_copy(
                update={"gateway": self.settings.gateway.model_copy(update={"state_dir": self.out / "gateways"})}
            )
            return
        stack = LocalStack.on_free_ports(
            self.out / "stack",
            gateways=tuple(gateway(w.gateway_id, self.plant.site, w.id) for w in self.plant.workshops),
            ingest_workers=len(self.workers),
        )
        with self.console.status("starting Mosquitto and InfluxDB…"):
            stack.up()
        self.stack = stack
        try:
            yield self.settings.model_copy(
                update={
                    "mqtt": MqttSettings(host="127.0.0.1", port=stack.mqtt_port),
                    "influx": InfluxSettings(
                        url=stack.influx_url, database=stack.database, retention_policy=stack.retention_policy
                    ),
                    "auth": AuthSettings(
                        credentials_file=stack.auth_files.credentials, ingest_workers=len(self.workers)
                    ),
                    "stack": StackSettings(dir=stack.directory),
                    "gateway": self.settings.gateway.model_copy(update={"state_dir": self.out / "gateways"}),
                }
            )
        finally:
            with self.console.status("services: stopping Mosquitto and InfluxDB"):
                began = time.monotonic()
                stack.down()
            self.console.print(f"  services: Mosquitto and InfluxDB stopped ({time.monotonic() - began:.1f} s)")

    def _run(self, settings: Settings, plant_file: Path) -> dict[str, Any]:
        o = self.options
        local = o.target == "local"
        env = child_env(
            settings,
            inherit_connection=not local,
            extra={
                "FTEL_INGEST__HEALTH_INTERVAL_S": str(HEALTH_INTERVAL_S),
                "FTEL_GATEWAY__STATE_DIR": str((self.out / "gateways").resolve()),
                "FTEL_SIMULATION__WINDOW_S": str(settings.simulation.window_s),
            },
        )
        interrupts = Interrupts()
        processes = _Processes(self.logs, env, interrupts)
        monitor = Monitor(with_identity(settings, SUPERVISOR).mqtt, site=self.plant.site)
        monitor.start()
        self.began_ms = wall_ms()
        try:
            if self.stack is not None:
                for name, service in (("mosquitto", self.stack.mosquitto), ("influxdb", self.stack.influxdb)):
                    pid = service.pid()
                    if pid is not None:
                        self.watch.watch(name, pid)
            self.watch.watch("loadtest", os.getpid())
            with self.console.status(f"starting {len(self.workers)} ingest workers and the alert worker…"):
                for worker in self.workers:
                    self.watch.watch("ingest", processes.start(worker, ["ingest", "--worker-id", worker]).pid)
                alerts = ["alerts", "run", "--state-dir", str(self.out / "alerts"), "--site", self.plant.site]
                if o.rules:
                    alerts += ["--rules", str(o.rules)]
                self.watch.watch("alerts", processes.start(ALERTS, alerts).pid)
                processes.wait_ready([*self.workers, ALERTS])
            lead_ms = start_lead_ms(self.plant.machine_count, os.cpu_count() or 1)
            clock = clock_plan(
                now_ms=wall_ms(),
                duration_ms=o.duration_ms,
                speedup=o.speedup,
                window_ms=self.window_ms,
                lead_ms=lead_ms,
            )
            # At real time the plant starts on a window edge, up to a window away: start the gateways a lead
            # before it, not earlier, or their first readings (taken at the start) wait for the clock.
            starts = time.strftime("%H:%M:%S", time.localtime(clock.anchor_ms / 1000))
            self.console.print(
                f"plant time {clock.speedup:g}×, starting at {starts}; {len(self.shares)} gateway processes, "
                f"logs in {self.logs}"
            )
            processes.pause(max(0.0, (clock.anchor_ms - lead_ms - wall_ms()) / 1000))
            for share in self.shares:
                self.watch.watch(
                    "gateways",
                    processes.start(share.name, self._gateway_args(share, clock, plant_file), nice=GATEWAY_NICE).pid,
                )
            failed = self._watch_run(processes, monitor, clock)
            wall_s = (wall_ms() - clock.anchor_ms) / 1000
            view = self._settle(monitor, clock, processes.pause)
            self._sample(monitor, clock, processes)
            processes.stop(self.workers)
            processes.stop([ALERTS])
        except _StopAsked:
            raise _Interrupted(self._stop_in_order(processes)) from None
        except BaseException:
            processes.kill_all()
            raise
        finally:
            monitor.stop()
            interrupts.restore()
        verdict = self._verdict(settings, clock)
        healths = self._healths(view)
        latency = merge_latency(healths)
        facts = RunFacts(
            target=o.target,
            machines=self.plant.machine_count,
            workshops=len(self.plant.workshops),
            gateway_processes=len(self.shares),
            gateway_processes_failed=failed,
            ingest_workers=len(self.workers),
            clock=clock,
            wall_s=wall_s,
            messages=sum(h.messages_in for h in healths),
            points=sum(h.points_written for h in healths),
            dead_letters=sum(h.dead_letters for h in healths),
            verdict=verdict,
            latency=latency,
            latency_at_warmup=self.latency_at_warmup,
            latency_before_stop=self.latency_before_stop,
            alerts=view.alerts,
            faults=self.fault_plan.faults,
            faults_skipped=self.fault_plan.skipped,
            usage=self.watch.usage(self.cpu_peaks),
            unconfirmed_peak=max((s["unconfirmed"] for s in self.timeline), default=0),
            worker_lag_peak_ms=max((s["worker_lag_ms"] for s in self.timeline), default=0),
            timeline=self.timeline,
            aims=o.aims,
        )
        summary = build_summary(facts)
        json_path, html_path = write_outputs(self.out, summary, latency.counts, alert_latencies(view.alerts, clock))
        self.console.print(f"summary → {json_path}\nreport  → {html_path}")
        return summary

    def _gateway_args(self, share: GatewayShare, clock: ClockPlan, plant_file: Path) -> list[str]:
        return [
            "simulate",
            "run",
            "--plant",
            str(plant_file),
            "--start-ms",
            str(clock.start_ms),
            "--anchor-ms",
            str(clock.anchor_ms),
            "--speedup",
            f"{clock.speedup:g}",
            "--duration",
            f"{clock.duration_ms // 1000}s",
            "--workshops",
            ",".join(share.workshops),
        ]

    # -- watching ------------------------------------------------------------------------------------------

    def _healths(self, view: WireView) -> list[WorkerHealth]:
        """This run's workers' latest health (a retained one from before the run is not theirs)."""
        return [h for name, h in view.health.items() if name in self.workers and h.ts >= self.began_ms]

    def _watch_run(self, processes: _Processes, monitor: Monitor, clock: ClockPlan) -> int:
        """Sample until every gateway process has ended; return how many failed (or had to be stopped)."""
        gateways = [s.name for s in self.shares]
        run_wall_s = clock.duration_ms / clock.speedup / 1000
        deadline_ms = clock.wall_end_ms + int(max(DRAIN_ALLOWANCE_S, run_wall_s / 2) * 1000)
        rebased = False
        title = (
            f"ftel load test — {self.plant.machine_count:,} machines, {len(self.plant.workshops)} workshops, "
            f"{len(self.shares)} gateway processes, {len(self.workers)} ingest workers, {clock.speedup:g}×"
        )
        # A terminal gets the table redrawn; a log (CI, a file) a line every PLAIN_EVERY_S.
        terminal = self.console.is_terminal
        next_line = 0.0
        late_since_line: int | None = None  # late messages since the last line printed (a log's line)
        with Live(console=self.console, refresh_per_second=1, transient=False, auto_refresh=terminal) as live:
            while any(processes.running[g].poll() is None for g in gateways):
                if wall_ms() > deadline_ms:
                    self.console.print("[red]gateways still draining past the allowance; stopping them[/red]")
                    processes.stop(gateways)
                    break
                processes.pause(self.options.sample_s)
                if not rebased and wall_ms() >= clock.anchor_ms:
                    self.watch.rebase()
                    rebased = True
                sample = self._sample(monitor, clock, processes)
                merged = self.latency_sampled
                plant_now = clock.plant_of(wall_ms())
                if self.latency_at_warmup is None and plant_now >= clock.start_ms + LATENCY_WARMUP_MS:
                    self.latency_at_warmup = merged
                if plant_now < clock.end_ms:
                    self.latency_before_stop = merged
                p99 = merged.percentile(99) if clock.real_time else None
                if sample["late"] is not None:
                    late_since_line = (late_since_line or 0) + sample["late"]
                if terminal:
                    live.update(progress_table(sample, title=title, plant_end_ms=clock.end_ms, latency_p99_ms=p99))
                elif time.monotonic() >= next_line:
                    line = progress_line(sample, latency_p99_ms=p99, late=late_since_line)
                    self.console.print(line, highlight=False)
                    next_line = time.monotonic() + PLAIN_EVERY_S
                    late_since_line = None
        failed = [g for g in gateways if processes.running[g].returncode != 0]
        for name in failed:
            self.console.print(
                f"[red]{name} exited with {processes.running[name].returncode}; see {self.logs / name}.log"
            )
        return len(failed)

    def _sample(self, monitor: Monitor, clock: ClockPlan, processes: _Processes) -> dict[str, Any]:
        now = wall_ms()
        resources = self.watch.sample()
        view = monitor.view()
        healths = self._healths(view)
        running = {w for s in self.shares if processes.running[s.name].poll() is None for w in s.workshops}
        gateway_ids = {w.gateway_id for w in self.plant.workshops if w.id in running}
        messages = sum(h.messages_in for h in healths)
        latency = merge_latency(healths)
        # Which moments of the run the late messages came from: the ones stored since the last sample later
        # than the aim (at real time only: faster, a message's time is plant time).
        late = max(0, latency.since(self.latency_sampled).over_about(self.options.aims.latency_ms))
        late_or_none = late if clock.real_time else None
        self.latency_sampled = latency
        points = sum(h.points_written for h in healths)
        previous = self.timeline[-1] if self.timeline else None
        elapsed = (now - clock.anchor_ms) / 1000
        span = elapsed - previous["t_s"] if previous else 0.0
        sample: dict[str, Any] = {
            "t_s": round(elapsed, 1),
            "plant_ms": min(clock.end_ms, clock.plant_of(now)),
            "messages": messages,
            "points": points,
            "messages_per_s": round((messages - previous["messages"]) / span, 1) if previous and span > 0 else 0.0,
            "points_per_s": round((points - previous["points"]) / span, 1) if previous and span > 0 else 0.0,
            "unconfirmed": sum(b.spool_depth for g, b in view.beats.items() if g in gateway_ids),
            "worker_lag_ms": max((h.lag_ms for h in healths), default=0),
            "late": late_or_none,
            "alerts": len(view.alerts),
            "cpu_percent": {name: s.cpu_percent for name, s in resources.items()},
            "rss_mb": {name: s.rss_mb for name, s in resources.items()},
        }
        for name, s in resources.items():
            self.cpu_peaks[name] = max(self.cpu_peaks.get(name, 0.0), s.cpu_percent)
        if elapsed >= 0:
            self.timeline.append(sample)
        return sample

    def _settle(self, monitor: Monitor, clock: ClockPlan, pause: Callable[[float], None]) -> WireView:
        """Wait until every worker has reported health after the gateways ended with nothing held, and every
        injected fault's alert has come (or ``alert_wait_s``); return what the wire showed then."""
        ended = wall_ms()
        deadline = time.monotonic() + self.options.alert_wait_s
        wanted = {(f.rule, f.machine_id) for f in self.fault_plan.faults}
        while True:
            view = monitor.view()
            healths = {h.worker: h for h in self._healths(view)}
            settled = all(w in healths and healths[w].ts > ended and healths[w].unacked == 0 for w in self.workers)
            seen = {(a.record.rule, a.record.subject) for a in view.alerts.values()}
            if (settled and wanted <= seen) or time.monotonic() > deadline:
                return view
            pause(0.5)

    def _stop_in_order(self, processes: _Processes) -> str:
        """Ctrl-C during the run: gateways first (they drain to living ingest workers), then the workers (they
        write and confirm what they hold), then the alert worker, each step shown while it waits; the services
        stop after (``_services``). Returns the line that says what was left."""
        began = time.monotonic()
        spools = self.out / "gateways"
        abort = processes.interrupts.abort
        self.console.print("stopping, in the order the data flows (Ctrl-C again stops at once)…", highlight=False)

        gateways = [s.name for s in self.shares]

        def gateways_waiting() -> str:
            waiting = sum(n for n, _ in left_in_spools(spools).values())
            return f"gateways: {waiting:,} messages waiting for confirmation by ingest"

        steps: list[tuple[str, list[str], Callable[[], str]]] = [
            ("gateways", gateways, gateways_waiting),
            ("ingest workers", self.workers, lambda: "ingest workers: writing and confirming what they hold"),
            ("alert worker", [ALERTS], lambda: "alert worker: saving its state"),
        ]
        with self.console.status("") as status:
            for label, names, waiting in steps:
                step = time.monotonic()
                processes.stop(names, waiting=partial(_show, status.update, waiting))
                how = "stopped at once" if abort.is_set() else "stopped"
                if names is gateways:
                    unconfirmed = sum(n for n, _ in left_in_spools(spools).values())
                    how += f", {unconfirmed:,} messages unconfirmed" if unconfirmed else ", all confirmed"
                self.console.print(f"  {label}: {how} ({time.monotonic() - step:.1f} s)", highlight=False)
        left: dict[str, tuple[int, Path | None]] = dict(left_in_spools(spools))
        line, warning = stop_summary(time.monotonic() - began, left, next_run="a load test with the same --out")
        line = f"interrupted: no verdict. {line}"
        return f"[yellow]{line}[/yellow]" if warning else line

    # -- the verdict ---------------------------------------------------------------------------------------

    def _verdict(self, settings: Settings, clock: ClockPlan) -> Verdict:
        workshops = len(self.plant.workshops)
        with self.console.status("the ledger…") as status:
            expected = expected_figures(
                self.plant,
                start_ms=clock.start_ms,
                end_ms=clock.end_ms,
                window_ms=self.window_ms,
                on_workshop=_progress(status.update, "the ledger", workshops),
            )
        with (
            self.console.status("reading InfluxDB…") as status,
            InfluxQuery(with_identity(settings, SUPERVISOR).influx) as query,
        ):
            stored = stored_figures(
                query,
                self.plant,
                start_ms=clock.start_ms,
                end_ms=clock.end_ms,
                on_workshop=_progress(status.update, "reading InfluxDB", workshops),
            )
        return compare(expected, stored)


def _show(update: Callable[[str], None], text: Callable[[], str]) -> None:
    update(text())


def _progress(update: Callable[[str], None], what: str, total: int) -> Callable[[int], None]:
    return lambda done: update(f"{what}: workshop {done}/{total}")


def file_listing(directory: Path) -> str:
    """Every file under ``directory``, a line each: when it was last written (UTC, to the millisecond), its bytes
    and its path inside ``directory``, oldest first."""
    files = sorted((path.stat().st_mtime, path) for path in directory.rglob("*") if path.is_file())
    return "".join(
        f"{datetime.fromtimestamp(mtime, UTC).isoformat(timespec='milliseconds')} {path.stat().st_size:>12} "
        f"{path.relative_to(directory)}\n"
        for mtime, path in files
    )

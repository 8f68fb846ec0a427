"""Window edges in the runner (docs/scale.md): a machine whose driver knows its next change is read on a window
edge when it is next read, or at the gateway's close phase after the edge at the latest, not every machine on the
edge at once (a county's gateway processes stalled for seconds there, and every message made meanwhile waited).
Its windows are read on the edge all the same: the same windows as reading every machine there, also when the
gateway is killed between the edge and its phase and resumes from its checkpoint."""

from __future__ import annotations

from pathlib import Path

from ftel.contract import decode
from ftel.contract.models import Message, StateWindow
from ftel.plant.layout import default_plant
from gateway.core import GatewayTiming
from gateway.runner import Gateway
from gateway.tracker import Origin
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from tests.unit.test_gateway_core import START, WINDOW, full_windows
from tests.unit.test_gateway_link import FakeLink

PHASE = 23_000
TICK = 1_000
MINUTES = 6


def gateway(clock: list[int], state_dir: Path, *, phase_ms: int) -> tuple[Gateway, FakeLink]:
    """The yarn workshop's gateway: carding and spinning count units all the time, so a window's units tell
    whether its machine was read on the edge."""
    plant = default_plant()
    yarn = plant.workshop("yarn")
    drivers = [SimulatedDriver(m) for _, m in plant_models(plant, start_ms=START, workshop="yarn")]
    link = FakeLink(confirm_on_publish=True)
    g = Gateway(
        Origin(plant.site, yarn.id, yarn.gateway_id),
        drivers,
        now_ms=lambda: clock[0],
        timing=GatewayTiming(WINDOW, 30_000, 10_000, 0.1, telemetry_spread=True, close_phase_ms=phase_ms),
        link=link,
        spool_max_messages=100_000,
        state_dir=state_dir,
    )
    return g, link


def sent(link: FakeLink) -> list[Message]:
    return [decode(topic, payload)[1] for topic, payload, _ in link.sent]


def on_the_edge_windows(tmp_path: Path) -> dict[tuple[str, int], tuple[object, ...]]:
    """Every machine read on every edge (no phase: the windows go out on the edge)."""
    clock = [START]
    g, link = gateway(clock, tmp_path / "on-the-edge", phase_ms=0)
    g.begin(first_read_ms=START)
    while clock[0] < START + MINUTES * WINDOW:
        clock[0] += TICK
        g.tick()
    g.shutdown(clock[0])
    return full_windows(sent(link))


def closed_on(g: Gateway, edge: int) -> int:
    """How many of the gateway's machines have closed their window at ``edge``."""
    return sum(t.state.window_start >= edge for t in g.core.trackers.values())


def test_machines_close_a_window_as_they_are_read_after_its_edge_and_all_by_the_phase(tmp_path: Path) -> None:
    clock = [START]
    g, link = gateway(clock, tmp_path / "phased", phase_ms=PHASE)
    g.begin(first_read_ms=START)
    machines = len(g.core.trackers)
    edge = START + 2 * WINDOW
    closed: dict[int, int] = {}
    while clock[0] < START + MINUTES * WINDOW:
        clock[0] += TICK
        g.tick()
        if edge <= clock[0] <= edge + PHASE:
            closed[clock[0] - edge] = closed_on(g, edge)
    g.shutdown(clock[0])
    # On the edge only the machines due then; more each second after it (as each is read); all by the phase.
    assert closed[0] < machines // 4
    assert closed[PHASE // 2 // TICK * TICK] > closed[0]
    assert list(closed.values()) == sorted(closed.values())
    assert closed[PHASE] == machines
    # ...and the windows are the ones every machine read on the edge makes, every machine's every minute.
    windows = full_windows(sent(link))
    assert len(windows) == machines * MINUTES
    assert windows == on_the_edge_windows(tmp_path)


def test_a_gateway_killed_between_an_edge_and_its_phase_resumes_with_the_same_windows(tmp_path: Path) -> None:
    clock = [START]
    first, first_link = gateway(clock, tmp_path / "phased", phase_ms=PHASE)
    first.begin(first_read_ms=START)
    edge = START + 3 * WINDOW
    while clock[0] < edge + PHASE // 2:
        clock[0] += TICK
        first.tick()
    owing = len(first.core.trackers) - closed_on(first, edge)
    assert owing > 0, "killed while machines still owe the edge"
    # Killed: no shutdown. The next start reads the checkpoint the last tick committed.
    clock[0] += 5 * TICK
    again, again_link = gateway(clock, tmp_path / "phased", phase_ms=PHASE)
    assert again.resumed
    again.begin()
    while clock[0] < START + MINUTES * WINDOW:
        clock[0] += TICK
        again.tick()
    again.shutdown(clock[0])
    messages = sent(first_link) + sent(again_link)
    windows = full_windows(messages)
    assert windows == on_the_edge_windows(tmp_path)
    # No full window was sent with two different contents (a resend is the same message).
    contents: dict[tuple[str, int], set[str]] = {}
    for m in messages:
        if isinstance(m, StateWindow) and not m.partial:
            contents.setdefault((m.machine_id, m.window_start), set()).add(m.model_dump_json(exclude={"seq", "ts"}))
    assert all(len(c) == 1 for c in contents.values())

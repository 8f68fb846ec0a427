"""Window edges (docs/scale.md): each gateway sends the windows and roll-ups it closed on an edge at its own phase
after it, so a county's gateways do not all send at once; the windows themselves stay what they were."""

from __future__ import annotations

from collections import Counter

from pydantic import TypeAdapter

from ftel.contract.limits import MACHINE_HOUR_SPREAD_WINDOWS
from ftel.contract.models import Message, Rollup, StateWindow
from ftel.settings import GatewaySettings
from gateway.core import CoreState, GatewayCore, GatewayTiming, close_phase_ms
from gateway.rollup import HOUR_MS
from simulators.plant import generate_plant
from tests.unit.test_gateway_core import START, TIMING, WINDOW, full_windows, workshop_core

PHASE = 17_000
TICK = 5_000
MINUTES = 30


def test_phases_derived_from_the_gateway_ids_spread_over_the_window() -> None:
    gateways = [w.gateway_id for w in generate_plant(60_000).workshops]
    phases = [close_phase_ms(g, WINDOW, None) for g in gateways]
    assert len(gateways) == 120
    assert all(0 <= p < WINDOW and p % 1000 == 0 for p in phases)
    assert phases == [close_phase_ms(g, WINDOW, None) for g in gateways]  # the same at every start
    # Every tenth of the window gets some gateways, and none more than twice its share.
    tenths = Counter(p * 10 // WINDOW for p in phases)
    assert set(tenths) == set(range(10))
    assert max(tenths.values()) <= 2 * len(gateways) // 10
    assert max(Counter(phases).values()) <= len(gateways) // 20  # no second holds more than 5 % of them


def test_a_configured_phase_is_taken_modulo_the_window_and_zero_sends_on_the_edge() -> None:
    assert close_phase_ms("gw-knit", WINDOW, 0) == 0
    assert close_phase_ms("gw-knit", WINDOW, 12.5) == 12_500
    assert close_phase_ms("gw-knit", WINDOW, 75) == 15_000
    assert GatewaySettings().close_phase_s is None  # the default: derived from the gateway id, on


def drive(core: GatewayCore, drivers: dict, ticks: range) -> list[tuple[int, Message]]:  # type: ignore[type-arg]
    """Every machine read at each tick, as the runner does; (tick, message) for everything sent."""
    out: list[tuple[int, Message]] = []
    for at in ticks:
        out += [(at, m) for m in core.observe(at, {mid: d.read(at) for mid, d in drivers.items()})]
    return out


def phased() -> tuple[GatewayCore, dict]:  # type: ignore[type-arg]
    core, drivers = workshop_core()
    timing = GatewayTiming(WINDOW, TIMING.telemetry_interval_ms, 10_000, 0.1, False, close_phase_ms=PHASE)
    return GatewayCore(core.origin, [d.info for d in drivers.values()], timing, boot_id=START), drivers


def test_phased_windows_go_out_at_the_phase_after_their_edge_and_hold_exactly_the_same() -> None:
    ticks = range(START, START + MINUTES * WINDOW + 1, TICK)
    core, drivers = workshop_core()
    at_edge = drive(core, drivers, ticks) + [(ticks[-1], m) for m in core.close(ticks[-1])]
    core, drivers = phased()
    sent = drive(core, drivers, ticks) + [(ticks[-1], m) for m in core.close(ticks[-1])]

    windows = [(at, m) for at, m in sent if isinstance(m, StateWindow) and not m.partial]
    assert len(windows) == len(drivers) * MINUTES
    for at, window in windows:
        edge = window.window_start + WINDOW
        assert window.ts == min(edge + PHASE, ticks[-1])
        first_tick_after = START - (START - edge - PHASE) // TICK * TICK
        assert at == min(first_tick_after, ticks[-1])  # not before its phase, and at the first tick after it
    rollups = [(at, m) for at, m in sent if isinstance(m, Rollup) and not m.partial]
    assert rollups
    assert all(m.ts == min(m.window_start + m.window_ms + PHASE, ticks[-1]) for _, m in rollups)
    # The windows themselves: the same milliseconds, stops, units and defects, window by window.
    assert full_windows([m for _, m in sent]) == full_windows([m for _, m in at_edge])
    assert _rollup_sums(sent) == _rollup_sums(at_edge)
    # Numbered in the order they go out.
    seqs = [m.seq for _, m in sent]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def _rollup_sums(sent: list[tuple[int, Message]]) -> dict[tuple[object, ...], tuple[object, ...]]:
    return {
        (m.machine_type, m.machine_id, m.window_start, m.window_ms): (m.state_ms, m.down_ms_by_reason, m.units)
        for _, m in sent
        if isinstance(m, Rollup) and not m.partial
    }


def test_held_windows_survive_a_checkpoint_and_go_out_after_the_restart() -> None:
    core, drivers = phased()
    edge = START + WINDOW
    before = drive(core, drivers, range(START, edge + 1, TICK))
    assert not [m for _, m in before if isinstance(m, StateWindow)]  # closed on the edge, held
    adapter = TypeAdapter(CoreState)
    restored = adapter.validate_json(adapter.dump_json(core.state))
    assert len(restored.held) == len(core.state.held) > len(drivers)  # the windows and their roll-ups
    again, drivers = phased()
    again = GatewayCore(again.origin, [d.info for d in drivers.values()], again.timing, boot_id=START, state=restored)
    for driver in drivers.values():
        driver.resume(edge)
    after = drive(again, drivers, range(edge + TICK, edge + PHASE + TICK, TICK))
    assert full_windows([m for _, m in after]) == full_windows(
        [m for m in core.state.held if isinstance(m, StateWindow)]
    )


def test_machines_hourly_roll_ups_go_out_spread_over_the_edges_after_the_hour_and_sum_the_same() -> None:
    hour_end = START - START % HOUR_MS + HOUR_MS
    ticks = range(START, hour_end + (MACHINE_HOUR_SPREAD_WINDOWS + 2) * WINDOW + 1, TICK)
    core, drivers = workshop_core()
    at_edge = drive(core, drivers, ticks) + [(ticks[-1], m) for m in core.close(ticks[-1])]
    core, drivers = phased()
    sent = drive(core, drivers, ticks)

    hourly = [(at, m) for at, m in sent if isinstance(m, Rollup) and m.machine_id and m.window_ms == HOUR_MS]
    assert {m.machine_id for _, m in hourly} == set(drivers)  # every machine's, once, before the gateway stops
    assert len(hourly) == len(drivers)
    edges = set()
    for at, rollup in hourly:
        later = rollup.ts - PHASE - hour_end
        assert later % WINDOW == 0
        assert 0 <= later < MACHINE_HOUR_SPREAD_WINDOWS * WINDOW
        assert hour_end + later + PHASE <= at < hour_end + later + PHASE + TICK  # at the first tick of its time
        edges.add(later)
    assert len(edges) > 1  # spread, not all on the hour's edge
    # The workshop's own hourly roll-up is not held back: it goes at the hour's phase.
    workshop_hour = [m for _, m in sent if isinstance(m, Rollup) and not m.machine_id and m.window_ms == HOUR_MS]
    assert [m.ts for m in workshop_hour] == [hour_end + PHASE] * len(workshop_hour)
    # What each says is what it said on the hour's edge.
    closed = sent + [(ticks[-1], m) for m in core.close(ticks[-1])]
    assert _rollup_sums(closed) == _rollup_sums(at_edge)

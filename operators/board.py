"""What the page shows of a workshop: its open and recent unexplained stops, each with its standing reason."""

from __future__ import annotations

from dataclasses import dataclass

from ftel.plant.reasons import Stop, UnexplainedRule
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field
from ftel.storage.stops import finished_stops, open_stops, stop_reasons


@dataclass(frozen=True, slots=True)
class Standing:
    reason: str
    who: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ListedStop:
    stop: Stop
    unexplained_ms: int
    standing: Standing | None


@dataclass(frozen=True, slots=True)
class StopReader:
    """Reads with the read-only InfluxDB user."""

    client: InfluxQuery
    site: str
    rule: UnexplainedRule
    recent_ms: int

    def listed(self, workshop: str, now_ms: int) -> list[ListedStop]:
        """Open stops first, then finished ones, newest first; only those that want a reason."""
        stops = open_stops(self.client, self.site, [workshop], now_ms) + finished_stops(
            self.client, self.site, [workshop], now_ms - self.recent_ms, now_ms + 1
        )
        wanted = [(stop, ms) for stop in stops if (ms := self.rule.ms(stop, now_ms)) is not None]
        if not wanted:
            return []
        first = min(stop.start_ms for stop, _ in wanted)
        reasons = stop_reasons(self.client, self.site, [workshop], first, now_ms + 1)
        out = []
        for stop, ms in wanted:
            row = reasons.get(stop.key)
            standing = (
                None if row is None else Standing(row[Field.REASON], row[Field.SET_BY], int(row[Field.SET_AT_MS]))
            )
            out.append(ListedStop(stop, ms, standing))
        out.sort(key=lambda s: (s.stop.end_ms is not None, -s.stop.start_ms))
        return out

    def find(self, workshop: str, machine_id: str, start_ms: int, now_ms: int) -> ListedStop | None:
        for listed in self.listed(workshop, now_ms):
            if listed.stop.key == (machine_id, start_ms):
                return listed
        return None

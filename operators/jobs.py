"""Which style and order a knitting machine is on, set from the page (docs/orders.md): read what it is on now,
make the change with ``hand_set_change`` (effective at the next window edge) and write it as a job point."""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.orders_data import current_job
from ftel.contract.states import MachineType
from ftel.plant.orders import Job, JobChange, OrderBook, hand_set_change
from ftel.plant.reasons import MachineRef
from ftel.storage.lineproto import encode_batch
from ftel.storage.points import job_point
from ftel.storage.query import InfluxQuery
from ftel.storage.stops import latest_states
from ftel.storage.writer import LineWriter, RetryPolicy, write_with_retry

# Styles and orders are knitting patterns: the page offers them for these machines.
JOB_MACHINE_TYPES = frozenset({MachineType.KNITTING})


@dataclass(frozen=True, slots=True)
class MachineJob:
    machine: MachineRef
    job: Job | None


@dataclass(frozen=True, slots=True)
class JobDesk:
    """Reads with the read-only InfluxDB user; the page writes the change with its own writer."""

    client: InfluxQuery
    site: str
    book: OrderBook
    window_ms: int

    def machines(self, workshop: str, now_ms: int) -> list[MachineJob]:
        states = latest_states(self.client, self.site, [workshop], now_ms)
        machines = sorted(
            (s.machine for s in states if s.machine.machine_type in JOB_MACHINE_TYPES), key=lambda m: m.machine_id
        )
        return [MachineJob(m, current_job(self.client, m.machine_id, now_ms)) for m in machines]

    def machine(self, workshop: str, machine_id: str, now_ms: int) -> MachineJob | None:
        return next((m for m in self.machines(workshop, now_ms) if m.machine.machine_id == machine_id), None)

    def change(self, machine: MachineJob, *, order: str | None, style: str | None, who: str, now_ms: int) -> JobChange:
        """The change asked for, refused (OrdersError) when the orders file does not know it."""
        return hand_set_change(
            self.book,
            machine_id=machine.machine.machine_id,
            now_ms=now_ms,
            window_ms=self.window_ms,
            current=machine.job,
            order=order,
            style=style,
            who=who,
        )


def record_job_change(writer: LineWriter, machine: MachineRef, change: JobChange, policy: RetryPolicy) -> None:
    """Write the change as a job point, retried by ``policy`` (the settings' ``direct_write_policy``)."""
    point = job_point(change, site=machine.site, workshop=machine.workshop, machine_type=machine.machine_type.value)
    write_with_retry(writer, encode_batch([point]), policy)

"""A generated plant of N machines in the county's mix, for load tests (the plant file itself is
ftel/plant/layout.py)."""

from __future__ import annotations

from ftel.contract.states import MachineType
from ftel.plant.layout import MachineSpec, Plant, Workshop, numbered_machines


def generate_plant(machines: int, *, site: str = "qinghe", per_workshop: int = 500, seed: int = 2026) -> Plant:
    """A plant of ``machines`` machines in the county's mix (about 5 carding : 1 knitting, a few spinning)."""
    mix = ((MachineType.CARDING, 0.80), (MachineType.KNITTING, 0.17), (MachineType.SPINNING, 0.03))
    workshops: list[Workshop] = []
    remaining = machines
    index = 0
    while remaining > 0:
        size = min(per_workshop, remaining)
        counts = [max(0, round(size * share)) for _, share in mix]
        counts[0] += size - sum(counts)
        specs: list[MachineSpec] = []
        for (machine_type, _), count in zip(mix, counts, strict=True):
            prefix = f"W{index + 1:03d}-{machine_type.value[:4].upper()}"
            specs.extend(numbered_machines(prefix, machine_type, count, per_line=20))
        workshops.append(
            Workshop(
                id=f"ws{index + 1:03d}",
                name=f"Workshop {index + 1}",
                gateway_id=f"gw-{index + 1:03d}",
                machines=tuple(specs),
            )
        )
        remaining -= size
        index += 1
    return Plant(site=site, seed=seed, workshops=tuple(workshops))

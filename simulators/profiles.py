"""How each machine type behaves: mean times between and to repair each fault, changeovers, short idles,
production rate and defect rate. Means are in seconds of running time (between) or stop time (to repair).

The natural life of a machine stays inside bounds that the default alert rules (alerts/rules.yaml) set well
beyond, so a plant without injected faults raises no alert by construction, not by luck;
tests/unit/test_fault_free.py ties the rules to these bounds so neither drifts from the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftel.contract.states import MachineType

MIN_STOP_S = 10.0
# A repair never takes longer than this many times its mean: an exponential draw passes 6 means 0.25 % of the
# time, so the cut hardly changes the mix, while every machine_down limit of the default rules is 7.5 means or more.
REPAIR_CAP_FACTOR = 6.0
# A machine never stops twice for the same reason within this long (start to start): at most 2 stops of one
# reason fall in the 10-minute window where the default rules look for 5.
MIN_SAME_FAULT_GAP_MS = 5 * 60 * 1000
# A natural fault reaches the gateway without its code (unknown_fault) only when the machine is back within this
# long; a longer stop keeps its code. The rules cannot know how long an unknown fault normally takes, so they judge
# it by their plain limit (20 min in the default rules), which the repairs of most reasons pass.
MAX_UNREPORTED_STOP_MS = 15 * 60 * 1000
# Running speed, permille of rated, drawn for each running stretch: never near the slow_running limit (70 %).
SPEED_PERMILLE = (880, 1000)


@dataclass(frozen=True, slots=True)
class Fault:
    reason: str
    mean_between_s: float
    mean_repair_s: float

    @property
    def max_repair_ms(self) -> int:
        """No natural repair of this fault takes longer (its exponential draw is cut here)."""
        return int(self.mean_repair_s * REPAIR_CAP_FACTOR * 1000)


@dataclass(frozen=True, slots=True)
class Profile:
    faults: tuple[Fault, ...]
    mean_between_setups_s: float
    mean_setup_s: float
    mean_between_idles_s: float
    mean_idle_s: float
    units_per_hour: int
    defect_rate_bp: int  # basis points: 150 = 1.5 % of units defective
    base_temperature_c: float
    running_temperature_rise_c: float
    maintenance_s: int


PROFILES: dict[MachineType, Profile] = {
    MachineType.KNITTING: Profile(
        faults=(
            Fault("yarn_break", 40 * 60, 120),
            Fault("needle_break", 6 * 3600, 15 * 60),
            Fault("fabric_drop_off", 4 * 3600, 8 * 60),
            Fault("yarn_carrier_fault", 8 * 3600, 12 * 60),
            Fault("pattern_error", 10 * 3600, 5 * 60),
        ),
        mean_between_setups_s=3 * 3600,
        mean_setup_s=20 * 60,
        mean_between_idles_s=2 * 3600,
        mean_idle_s=5 * 60,
        units_per_hour=5,
        defect_rate_bp=200,
        base_temperature_c=28.0,
        running_temperature_rise_c=9.0,
        maintenance_s=60 * 60,
    ),
    MachineType.CARDING: Profile(
        faults=(
            Fault("fibre_choke", 3 * 3600, 10 * 60),
            Fault("feed_empty", 2 * 3600, 4 * 60),
            Fault("clothing_wear", 24 * 3600, 45 * 60),
            Fault("motor_overload", 12 * 3600, 20 * 60),
        ),
        mean_between_setups_s=8 * 3600,
        mean_setup_s=30 * 60,
        mean_between_idles_s=3 * 3600,
        mean_idle_s=6 * 60,
        units_per_hour=8,
        defect_rate_bp=100,
        base_temperature_c=30.0,
        running_temperature_rise_c=14.0,
        maintenance_s=90 * 60,
    ),
    MachineType.SPINNING: Profile(
        faults=(
            Fault("ends_down", 30 * 60, 90),
            Fault("roving_out", 2 * 3600, 3 * 60),
            Fault("drafting_fault", 12 * 3600, 25 * 60),
        ),
        mean_between_setups_s=10 * 3600,
        mean_setup_s=40 * 60,
        mean_between_idles_s=4 * 3600,
        mean_idle_s=5 * 60,
        units_per_hour=20,
        defect_rate_bp=150,
        base_temperature_c=27.0,
        running_temperature_rise_c=11.0,
        maintenance_s=60 * 60,
    ),
}

# Shift handover, when the simulation has no calendar: every machine stands IDLE for a while at the start of each
# shift of the default calendar (ftel/plant/calendar.py: 00:00, 08:00 and 16:00 in its zone).
HANDOVER_MS = 10 * 60 * 1000

"""Controller faults to inject while serving (YAML, ``ftel simulate serve --faults FILE``), in plant seconds
after the simulation's start: a controller that stops answering, one that restarts (its counters start again
from zero), one that reports garbage (a temperature out of any range, a fault code no table knows)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ftel.contract.topics import ID_PATTERN

Id = Annotated[str, Field(pattern=ID_PATTERN)]


class _Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    machine: Id
    at_s: float = Field(ge=0)


class Silence(_Fault):
    duration_s: float = Field(gt=0)


class Restart(_Fault):
    pass


class Garble(_Fault):
    duration_s: float = Field(gt=0)
    temperature_c: float | None = None
    fault_code: int | None = Field(None, ge=0, le=65_535)


class Faults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    silent: tuple[Silence, ...] = ()
    restart: tuple[Restart, ...] = ()
    garble: tuple[Garble, ...] = ()


def load_faults(path: Path) -> Faults:
    return Faults.model_validate(yaml.safe_load(path.read_text()) or {})


def dump_faults(faults: Faults) -> str:
    return yaml.safe_dump(faults.model_dump(mode="json", exclude_defaults=True), sort_keys=False)

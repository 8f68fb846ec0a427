"""The gateways a plant has, as identities: one per workshop of the plant file."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ftel.plant.layout import default_plant, load_plant
from ftel.security.errors import AuthError
from ftel.security.identities import Identity, gateway
from ftel.settings import Settings


def plant_gateways(settings: Settings, plant_file: Path | None = None) -> tuple[Identity, ...]:
    """One gateway identity per workshop of the plant (``plant_file``, the settings' plant, or the default)."""
    path = plant_file or settings.simulation.plant
    try:
        plant = load_plant(path) if path else default_plant(settings.site)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise AuthError(f"cannot read the plant file {path}: {error}") from error
    return tuple(gateway(w.gateway_id, plant.site, w.id) for w in plant.workshops)

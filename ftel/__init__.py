"""Factory telemetry for cashmere workshops: shared runtime (wire contract, settings, local stack, CLI)."""

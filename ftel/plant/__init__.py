"""What a plant is, owned by the base: its calendar (time zone, shifts, breaks, days off)."""

"""Edge gateway: one per workshop. Drives machines, detects state changes, computes durations and window
accumulators at the edge, and publishes them over MQTT (QoS 1) with birth, last will and a spool."""

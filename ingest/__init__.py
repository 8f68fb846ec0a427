"""Ingest workers: MQTT shared subscription → validate → line protocol → batched writes → ack after write."""

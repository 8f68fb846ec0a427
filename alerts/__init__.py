"""Maintenance alerts: rules over the live event stream (pure core: rules, engine, lifecycle), delivered
to a retained MQTT topic per alert, the InfluxDB ``alerts`` measurement and webhooks
(I/O shell: worker, outbox)."""

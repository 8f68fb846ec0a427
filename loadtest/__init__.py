"""`ftel loadtest`: a generated county plant through the whole pipeline, measured and judged against the ledger.

Pure parts: ``plan`` (clock and processes), ``faults`` (injected faults and the alerts they must raise),
``health`` (workers' health and their merged latency histograms), ``verdict`` (InfluxDB vs. the ledger),
``summary`` (the JSON summary and its documented keys). Shells: ``monitor`` (MQTT), ``resources`` (CPU and
memory per component), ``check`` (ledger and InfluxDB), ``report`` (HTML with plots), ``run`` (orchestration).
Its command is ftel/app/loadtest_command.py: nothing imports this package but the composition root (ftel.app) and
tests.
"""

"""Grafana boards and the shift report, provisioned as code: boards from grafana-foundation-sdk builders,
one set of InfluxQL queries shared by boards, report and tests (``dashboards.queries``)."""

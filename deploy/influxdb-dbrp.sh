#!/bin/bash
# Runs once, after InfluxDB 2.x set-up: maps database "ftel" / retention policy "ftel_rp" onto the bucket, so
# the v1 /write and InfluxQL /query that ingest and Grafana use reach it.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --db ftel --rp ftel_rp --bucket-id "${bucket_id}" --default

#!/bin/bash
# Runs once, inside the influxdb container right after its set-up (the influx CLI holds the operator token
# there): maps database "ftel" / retention policy "ftel_rp" onto the bucket, so the v1 /write and InfluxQL
# /query that ingest and Grafana use reach it, and creates the v1 users the services get instead of the
# token: ftel-ingest and ftel-alerts may only write the bucket, ftel-grafana may only read it, ftel-settle
# reads the roll-ups and writes the settled figures.
set -euo pipefail
org="${DOCKER_INFLUXDB_INIT_ORG}"
bucket_id=$(influx bucket list --org "${org}" --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --org "${org}" --db ftel --rp ftel_rp --bucket-id "${bucket_id}" --default
influx v1 auth create --org "${org}" --username ftel-ingest --password "${FTEL_INGEST_INFLUX_PASSWORD}" \
  --write-bucket "${bucket_id}" --description "ftel ingest workers: write only"
influx v1 auth create --org "${org}" --username ftel-alerts --password "${FTEL_ALERTS_INFLUX_PASSWORD}" \
  --write-bucket "${bucket_id}" --description "ftel alert worker: write only"
influx v1 auth create --org "${org}" --username ftel-grafana --password "${FTEL_GRAFANA_INFLUX_PASSWORD}" \
  --read-bucket "${bucket_id}" --description "Grafana: read only"
influx v1 auth create --org "${org}" --username ftel-settle --password "${FTEL_SETTLE_INFLUX_PASSWORD}" \
  --read-bucket "${bucket_id}" --write-bucket "${bucket_id}" --description "ftel settle: reads roll-ups, writes settled figures"

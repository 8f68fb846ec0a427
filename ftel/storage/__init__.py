"""The one owner of InfluxDB: the schema (measurements, tags, fields), line protocol, the point mapping of
every contract message, the writer (pooled HTTP, refusal classes, retries) and the InfluxQL query client.
Ingest, alerts, backfill, boards, the report and the live view all import it; none speaks to InfluxDB
on its own."""

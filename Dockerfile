# One image for every ftel role (ingest, simulate, alerts): the role is the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ftel ftel
COPY gateway gateway
COPY ingest ingest
COPY simulators simulators
COPY dashboards dashboards
COPY alerts alerts
RUN pip install --no-cache-dir .
ENTRYPOINT ["ftel"]

# One image for every ftel role (ingest, gateway, alerts): the role is the command. It runs as an unprivileged
# user; its state (gateway spools, the alert store) lives in /app/.ftel, a volume per service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ftel ftel
COPY gateway gateway
COPY ingest ingest
COPY simulators simulators
COPY dashboards dashboards
COPY alerts alerts
COPY loadtest loadtest
COPY operators operators
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin ftel \
    && mkdir -p /app/.ftel \
    && chown ftel:ftel /app/.ftel
USER ftel
ENTRYPOINT ["ftel"]

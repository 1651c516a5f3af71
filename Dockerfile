# syntax=docker/dockerfile:1
# The feedwatch worker image. Build: docker build -t feedwatch .
# Run:   docker run --rm feedwatch run --config /etc/feedwatch/feedwatch.yaml
# docker-compose.yml runs two replicas of it against PostgreSQL and Mailpit.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the wheel is built from (pyproject's readme and force-included rules too).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY rules ./rules
RUN pip install ".[postgres]" \
    && cd / && rm -rf /src

COPY deploy/healthcheck.py /usr/local/lib/feedwatch/healthcheck.py

RUN useradd --system --uid 10001 --user-group --create-home \
        --home-dir /var/lib/feedwatch --shell /usr/sbin/nologin feedwatch
WORKDIR /var/lib/feedwatch
USER 10001:10001

# Healthy: the feedwatch process is alive, the database in FEEDWATCH_DATABASE accepts
# connections, and FEEDWATCH_HEALTH_URL (if set) answers 2xx.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/feedwatch/healthcheck.py"]

# With no config, `run` uses SQLite under /var/lib/feedwatch/data and the bundled rules.
ENTRYPOINT ["feedwatch"]
CMD ["run"]

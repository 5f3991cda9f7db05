# syntax=docker/dockerfile:1
FROM python:3.12-slim-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN /opt/venv/bin/pip install --no-compile .

FROM python:3.12-slim-bookworm
LABEL org.opencontainers.image.title="saas-backup-exporter" \
      org.opencontainers.image.description="Prometheus exporter for SaaS backup health"
COPY --from=build /opt/venv /opt/venv
# The state file (warm restarts) lives in a volume the unprivileged user owns.
RUN mkdir -p /var/lib/saas-backup-exporter && chown 10049:10049 /var/lib/saas-backup-exporter
ENV PATH="/opt/venv/bin:$PATH" PYTHONUNBUFFERED=1 \
    SAAS_BACKUP_CACHE__STATE_FILE=/var/lib/saas-backup-exporter/state.db
VOLUME ["/var/lib/saas-backup-exporter"]
USER 10049:10049
EXPOSE 10049
ENTRYPOINT ["saas-backup-exporter"]
CMD ["--config.file", "/etc/saas-backup-exporter/config.yml"]

# One image for the three services, the topic provisioner and the migrations; the command
# picks what runs:
#   docker run ... consent-service python -m services.inbound      (port 8081)
#   docker run ... consent-service python -m services.consent      (port 8082)
#   docker run ... consent-service python -m services.dispatcher   (port 8083)
#   docker run ... consent-service python -m shared.kafka.provision
#   docker run ... consent-service python -m shared.db.migrate     (as the owner)
# docker-compose.yml wires them to Kafka and PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
# `python -m shared.db.migrate` applies these, and the services check at startup
# that all are applied (both look for them at <source root>/deploy/migrations,
# beside shared/).
COPY deploy/migrations ./deploy/migrations

# `pip install .` brings the dependencies; the services run from /app (python -m
# puts the working directory first on sys.path), where the migrations sit beside
# the code that looks for them. The build leftovers are not needed at run time.
RUN pip install . \
    && rm -rf build ./*.egg-info

# Not root; a numeric id so that runAsNonRoot-style checks can verify it. The
# code stays owned by root, so the service cannot change it.
RUN useradd --system --uid 10001 --gid nogroup --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin consent
USER 10001

# The services bind 127.0.0.1 by default (right for a laptop, useless in a
# container); JSON logs for a log collector.
ENV INBOUND_HTTP_HOST=0.0.0.0 \
    CONSENT_HTTP_HOST=0.0.0.0 \
    DISPATCHER_HTTP_HOST=0.0.0.0 \
    LOG_FORMAT=json

EXPOSE 8081 8082 8083

CMD ["python", "-m", "services.inbound"]

# One Dockerfile, one image per process: the stages `auth`, `events`,
# `messages`, `realtime` and `migrations` share every layer but their last
# lines (command, port, health check), so building all five costs one build.
#
#   docker build --target auth -t lifytp-auth .
#
# pip behind a TLS-inspecting proxy: pass the CA bundle as a build secret, it
# never lands in a layer:
#   docker build --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt ...

ARG BASE_IMAGE=debian:bookworm-slim

# ---- build: a virtualenv with the pinned dependencies -----------------------
FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# pip's download cache survives rebuilds (a BuildKit cache mount, in no layer).
RUN --mount=type=secret,id=pip_ca,required=false \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && /opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---- runtime: python, the virtualenv and the code, as a non-root user --------
FROM ${BASE_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 lifytp \
 && useradd --system --uid 10001 --gid lifytp --home-dir /app --shell /usr/sbin/nologin lifytp \
 && install -d -o lifytp -g lifytp -m 0700 /var/lib/lifytp/signing \
 && install -d -o lifytp -g lifytp -m 0755 /var/lib/lifytp/public \
 && install -d -o lifytp -g lifytp -m 0700 /var/lib/lifytp/mail
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config.yaml ./
COPY http_edge/ http_edge/
COPY services/ services/
COPY realtime/ realtime/
COPY deploy/docker/healthcheck.py /usr/local/bin/lifytp-healthcheck
RUN python3 -m compileall -q /app
# Keys and media come from mounts; nothing is written under /app at run time.
# (Compose mounts its key volumes at /var/lib/lifytp/{signing,public}, and
# the mail sink's at /var/lib/lifytp/mail: made
# here so that a fresh volume belongs to the unprivileged user.)
# stderr holds JSON log lines only, and eventlet's import-time notice comes
# before logging is set up (nameko's `import eventlet`): it is not printed.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIFYTP_CONFIG=/app/config.yaml \
    MEDIA_LOCAL_DIR=/tmp/media \
    PYTHONWARNINGS=ignore::Warning:nameko.cli.commands
# Paths where the key Secret is mounted, not keys.
# hadolint ignore=DL3064
ENV JWT_PRIVATE_KEY_PATH=/var/run/secrets/lifytp/jwt/jwt-private.pem \
    JWT_PUBLIC_KEY_PATH=/var/run/secrets/lifytp/jwt/jwt-public.pem
USER 10001:10001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/opt/venv/bin/python", "/usr/local/bin/lifytp-healthcheck"]

# ---- one stage per process ----------------------------------------------------
# auth, and beside it services.api: the whole API's /openapi.json and /docs
# (the composition root; auth runs in every deployment).
FROM runtime AS auth
ENV WEB_SERVER_ADDRESS=0.0.0.0:4100
EXPOSE 4100
ENTRYPOINT ["/opt/venv/bin/nameko", "run", "--config", "/app/config.yaml", "services.auth.service", "services.api"]

FROM runtime AS events
ENV WEB_SERVER_ADDRESS=0.0.0.0:4101
EXPOSE 4101
ENTRYPOINT ["/opt/venv/bin/nameko", "run", "--config", "/app/config.yaml", "services.events.service"]

FROM runtime AS messages
ENV WEB_SERVER_ADDRESS=0.0.0.0:4102
EXPOSE 4102
ENTRYPOINT ["/opt/venv/bin/nameko", "run", "--config", "/app/config.yaml", "services.messages.service"]

FROM runtime AS realtime
ENV WEB_SERVER_ADDRESS=0.0.0.0:4103
EXPOSE 4103
ENTRYPOINT ["/opt/venv/bin/nameko", "run", "--config", "/app/config.yaml", "realtime.service"]

# Applies every service's migrations and exits (the Kubernetes Job, the compose
# `migrations` service).
FROM runtime AS migrations
HEALTHCHECK NONE
ENTRYPOINT ["/opt/venv/bin/python", "-m", "services.shared.migrations"]

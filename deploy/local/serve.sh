#!/usr/bin/env bash
# Every LifyTP process in one `nameko run`: one port, one base URL (4100 unless
# WEB_SERVER_ADDRESS says otherwise). Expects a migrated database (make run).
# With arguments, only the named service modules run (services.auth.service ...).
set -euo pipefail
cd "$(dirname "$0")/../.."
modules=("$@")
if [ ${#modules[@]} -eq 0 ]; then
  for module in services/auth services/events services/messages realtime; do
    [ -f "$module/service.py" ] && modules+=("${module//\//.}.service")
  done
  modules+=(services.api)  # /openapi.json and /docs of the whole API
fi
# LIFYTP_MAIL_SINK=<dir> (make run): the development mail sink runs beside
# them on 127.0.0.1:${MAIL_SINK_PORT:-1025}, writing each mail as an .eml file
# under <dir>, and SMTP_URL points at it. It stops when they do (the exec
# below keeps this PID, which it watches).
if [ -n "${LIFYTP_MAIL_SINK:-}" ]; then
  export SMTP_URL="smtp://127.0.0.1:${MAIL_SINK_PORT:-1025}"
  .venv/bin/python -m services.shared.mail_sink --port "${MAIL_SINK_PORT:-1025}" --dir "$LIFYTP_MAIL_SINK" \
    --parent-pid $$ &
fi
# stderr holds JSON log lines only; eventlet's deprecation notice at nameko's
# `import eventlet` comes before logging is set up, so it is not printed.
export PYTHONWARNINGS="ignore::Warning:nameko.cli.commands${PYTHONWARNINGS:+,$PYTHONWARNINGS}"
exec .venv/bin/nameko run --config "${LIFYTP_CONFIG:-config.yaml}" "${modules[@]}"

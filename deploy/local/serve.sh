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
# stderr holds JSON log lines only; eventlet's deprecation notice at nameko's
# `import eventlet` comes before logging is set up, so it is not printed.
export PYTHONWARNINGS="ignore::Warning:nameko.cli.commands${PYTHONWARNINGS:+,$PYTHONWARNINGS}"
exec .venv/bin/nameko run --config "${LIFYTP_CONFIG:-config.yaml}" "${modules[@]}"

#!/usr/bin/env bash
# Every LifyTP process in one `nameko run`: one port, one base URL (4100 unless
# WEB_SERVER_ADDRESS says otherwise). Expects a migrated database (make run).
set -euo pipefail
cd "$(dirname "$0")/../.."
modules=()
for module in services/auth services/events services/messages realtime; do
  [ -f "$module/service.py" ] && modules+=("${module//\//.}.service")
done
exec .venv/bin/nameko run --config "${LIFYTP_CONFIG:-config.yaml}" "${modules[@]}"

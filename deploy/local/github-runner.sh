#!/usr/bin/env bash
# GitHub's ubuntu-24.04 runner made the machine `make test` expects (the one
# `.ci/run` runs on): PostgreSQL answering on 127.0.0.1 with trust
# authentication, redis-server and rabbitmq-server installed and running (the
# failover and reliability tests also start their own from these binaries),
# the runner's Chrome and ChromeDriver under the names the browser test looks
# for, and the Debian base image of the Dockerfile. Run as root, once, before
# `make test`; .github/workflows/ci.yml does.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
apt-get install -y -qq redis-server rabbitmq-server >/dev/null

# The runner's PostgreSQL is installed but stopped and asks for passwords.
version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
cat > "/etc/postgresql/$version/main/pg_hba.conf" <<'HBA'
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
HBA
pg_ctlcluster "$version" main restart || pg_ctlcluster "$version" main start

# Chrome stands in for Debian's chromium and chromium-driver.
command -v chromium >/dev/null || ln -sf "$(command -v google-chrome)" /usr/local/bin/chromium
command -v chromedriver >/dev/null || ln -sf "${CHROMEWEBDRIVER:?}/chromedriver" /usr/local/bin/chromedriver

# The base image the tests would otherwise make with debootstrap.
docker pull -q debian:bookworm-slim

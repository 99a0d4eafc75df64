#!/usr/bin/env bash
# A working docker on this machine for the image test: Debian's docker.io
# (dockerd with BuildKit) and debootstrap, installed if missing, and dockerd
# started if it is not answering. Prints the docker client to use.
set -euo pipefail

docker_client() { # a client whose daemon answers and that builds with BuildKit secrets
  for candidate in /usr/bin/docker "$(command -v docker 2>/dev/null || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" info >/dev/null 2>&1 && { echo "$candidate"; return 0; }
  done
  return 1
}

if client=$(docker_client); then
  command -v debootstrap >/dev/null || "$client" image inspect debian:bookworm-slim >/dev/null 2>&1 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
  echo "$client"; exit 0
fi

missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "need root to install ${missing[*]}" >&2; exit 1; }
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

if ! /usr/bin/docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "dockerd is not running and only root can start it" >&2; exit 1; }
  mkdir -p /var/log
  nohup /usr/sbin/dockerd >>/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 1; done
fi
client=$(docker_client) || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
echo "$client"

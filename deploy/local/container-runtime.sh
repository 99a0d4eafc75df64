#!/usr/bin/env bash
# A working docker on this machine for the image and compose tests: Debian's
# docker.io (dockerd with BuildKit), the Compose v2 plugin and debootstrap,
# installed if missing, and dockerd started if it is not answering. Prints the
# docker client to use.
set -euo pipefail
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Bookworm ships only the old Python docker-compose 1.x (no `docker compose`,
# no --wait); Debian 13 packages Compose v2 as one static binary that needs
# nothing newer than bookworm's libc. apt fetches it from trixie with the
# archive's signatures checked; nothing else comes from trixie.
ensure_compose() {
  "$1" compose version >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "docker compose is missing and only root can install it" >&2; return 1; }
  if apt-cache policy docker-compose 2>/dev/null | grep -q 'Candidate: 2\.'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >&2
  else
    local work; work=$(mktemp -d)
    mkdir -p "$work/lists/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" > "$work/trixie.list"
    local apt=(apt-get -qq -o "Dir::Etc::SourceList=$work/trixie.list" -o Dir::Etc::SourceParts=/dev/null
               -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
    "${apt[@]}" update >&2
    (cd "$work" && "${apt[@]}" download docker-compose >&2)
    dpkg -i "$work"/docker-compose_*.deb >&2
    rm -rf "$work"
  fi
  "$1" compose version >/dev/null
}

docker_client() { # a client whose daemon answers and that builds with BuildKit secrets
  for candidate in /usr/bin/docker "$(command -v docker 2>/dev/null || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" info >/dev/null 2>&1 && { echo "$candidate"; return 0; }
  done
  return 1
}

if client=$(docker_client); then
  command -v debootstrap >/dev/null || "$client" image inspect debian:bookworm-slim >/dev/null 2>&1 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
  ensure_compose "$client"
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
ensure_compose "$client"
echo "$client"

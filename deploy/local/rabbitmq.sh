#!/usr/bin/env bash
# This machine's RabbitMQ, configured as docker-compose.yml and Kubernetes
# configure theirs from rabbitmq/: started if it is down, the management UI on
# http://localhost:15672, and rabbitmq/definitions.json imported (its users,
# the `lifytp` vhost, permissions, policies, the dead-letter exchange and
# queue). Also the vhosts `lifytp` and `lifytp_test`, open to guest, which
# `make run` and `make test` use.
#
# Safe to run again: the import adds or updates what the file names and leaves
# every other user, vhost and permission as it is (guest, the test suites'
# vhosts). The file's passwords are public examples, so its users may log in
# from this machine only and the UI listens on loopback alone, as compose
# publishes it; /etc/rabbitmq/conf.d/ keeps both across restarts.
set -euo pipefail
cd "$(dirname "$0")/../.."

definitions=rabbitmq/definitions.json
conf_file=/etc/rabbitmq/conf.d/50-lifytp.conf

if ! command -v rabbitmqctl >/dev/null; then
  echo "RabbitMQ: no rabbitmqctl on this machine, so no broker here to start or configure." \
       "Install rabbitmq-server, or point AMQP_URI at a broker configured with rabbitmq/ (docs/DEPLOY.md)." >&2
  exit 0
fi

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  # await_startup fails at once until the node has registered its name.
  for _ in $(seq 1 60); do rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done
  rabbitmqctl -q status >/dev/null 2>&1 || { echo "RabbitMQ did not come up" >&2; exit 1; }
fi

for vhost in lifytp lifytp_test; do
  rabbitmqctl -q add_vhost "$vhost" >/dev/null 2>&1 || true
  rabbitmqctl -q set_permissions -p "$vhost" guest ".*" ".*" ".*" >/dev/null
done

if ! command -v rabbitmq-plugins >/dev/null || [ ! -d /etc/rabbitmq ]; then
  echo "RabbitMQ: rabbitmqctl reaches a broker that is not installed on this machine (no rabbitmq-plugins" \
       "or /etc/rabbitmq); enable rabbitmq_management and import $definitions there yourself (docs/DEPLOY.md)." >&2
  exit 0
fi

# Users as Erlang binaries, e.g. <<"lifytp-admin">>,<<"lifytp-auth">>.
read -ra users <<<"$(python3 -c 'import json, sys; print(" ".join(u["name"] for u in json.load(open(sys.argv[1]))["users"]))' \
  "$definitions")"
erlang_users=$(printf '<<"%s">>,' "${users[@]}"); erlang_users=${erlang_users%,}

# For the boots to come. Listing any user replaces RabbitMQ's default
# loopback_users (guest alone), so guest is listed too.
conf="# Written by LifyTP's deploy/local/rabbitmq.sh: $definitions holds example
# passwords, so its users log in from this machine only, and the management UI
# listens on loopback (as docker-compose.yml publishes it).
management.tcp.ip = 127.0.0.1
loopback_users.guest = true
$(printf 'loopback_users.%s = true\n' "${users[@]}")"
if [ "$(cat "$conf_file" 2>/dev/null)" != "$conf" ]; then
  mkdir -p "$(dirname "$conf_file")"
  printf '%s\n' "$conf" >"$conf_file"
fi

# The running node reads that file at its next boot only: the same settings
# now, before the users exist. The loopback users add to those already set.
rabbitmqctl -q eval "{ok, Users} = application:get_env(rabbit, loopback_users), application:set_env(rabbit, loopback_users, lists:usort(Users ++ [$erlang_users]))." >/dev/null
if ! rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
  # Persistent, or loading the plugin puts back what the node's configuration
  # set for it at boot (a port, say), which this adds to.
  rabbitmqctl -q eval 'application:set_env(rabbitmq_management, tcp_config, lists:keystore(ip, 1, application:get_env(rabbitmq_management, tcp_config, []), {ip, "127.0.0.1"}), [{persistent, true}]).' >/dev/null
  rabbitmq-plugins -q enable rabbitmq_management >/dev/null
  echo "RabbitMQ: management UI enabled on http://localhost:15672 (logging in: README.md)"
fi

# On standard input: the CLI runs as the rabbitmq user, who may not read this
# tree. guest keeps its permissions on `lifytp`: the file does not name guest.
rabbitmqctl -q import_definitions --format json <"$definitions" >/dev/null

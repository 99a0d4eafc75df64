#!/usr/bin/env bash
# Rotate the password of the PostgreSQL role the services connect as, with no
# moment at which a running client holds a password that no longer works.
#
# A role has one password, and a pod reads its connection string only when it
# starts: changing the password under running pods would fail every new
# connection they open until they are replaced. So the clients move to a
# bridge role first (a second login that acts as the role: every session of
# it runs SET ROLE to it, so it owns and sees the same objects), the role
# takes the new password, and the clients move back. The steps, in order
# (docs/DEPLOY.md, "Rotating the PostgreSQL password"):
#
#   rotate-password.sh begin < NEW          database: create the bridge, ${role}_rotation, with the new password
#   rotate-password.sh secrets DIR bridge < NEW
#                                           secret files in DIR: the processes' and migrations' database
#                                           URLs use the bridge; apply them and wait for the rollout
#   rotate-password.sh switch < NEW         database: the role takes the new password (refused while
#                                           anyone but this session is connected as the role)
#   rotate-password.sh secrets DIR final < NEW
#                                           secret files: the URLs use the role again, and postgres.env
#                                           (the backup's) the new password; apply, wait for the rollout
#   rotate-password.sh end                  database: drop the bridge (refused while anyone is connected as it)
#
# NEW, the new password, is read from stdin (prompted for on a terminal): 16
# or more of A-Z a-z 0-9 . _ ~ - (make-secrets.py's alphabet), which need no
# escaping in a URL. The database steps connect with libpq's variables
# (PGHOST, PGUSER, PGPASSWORD, PGDATABASE). The role is $POSTGRES_ROLE, lifytp
# by default.
set -euo pipefail
export LC_ALL=C

die() { echo "rotate-password: $*" >&2; exit 1; }
usage() { sed -n '/^#   rotate-password.sh/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

role=${POSTGRES_ROLE:-lifytp}
bridge=${role}_rotation
# The files deploy/make-secrets.py writes that hold a database URL.
url_files=(auth.env events.env messages.env migrations.env)

read_password() {
  local password=
  if [ -t 0 ]; then
    read -rsp "new password for $role: " password
    echo >&2
  else
    IFS= read -r password || [ -n "$password" ] || die "no password on stdin"
  fi
  [[ $password =~ ^[A-Za-z0-9._~-]{16,}$ ]] || die "the password must be 16 or more of A-Z a-z 0-9 . _ ~ -"
  echo "$password"
}

# psql reading SQL from stdin, so that :'variables' are interpolated.
sql() {
  psql -X --no-password --quiet --no-align --tuples-only -v ON_ERROR_STOP=1 \
    -v role="$role" -v bridge="$bridge" "$@"
}

# The clients' sessions logged in as $1, but this one. (The server's own
# background workers, such as the logical replication launcher, show the
# bootstrap superuser, which is the role in the image: they do not count.)
sessions_of() {
  sql -v who="$1" <<'SQL'
SELECT format('pid %s from %s since %s (%s)', pid, coalesce(host(client_addr), 'the local socket'),
              date_trunc('second', backend_start), coalesce(nullif(application_name, ''), 'no application name'))
FROM pg_stat_activity
WHERE usename = :'who' AND backend_type = 'client backend' AND pid <> pg_backend_pid();
SQL
}

refuse_while_connected() {
  local who=$1 why=$2 sessions
  sessions=$(sessions_of "$who")
  [ -z "$sessions" ] || die "$(printf '%s\n%s\n%s' "still connected as $who:" "$sessions" "$why; then run this step again")"
}

bridge_exists() {
  [ "$(sql <<<"SELECT count(*) FROM pg_roles WHERE rolname = :'bridge'")" = 1 ]
}

begin() {
  local password
  password=$(read_password)
  NEW_PASSWORD=$password sql <<'SQL'
\getenv password NEW_PASSWORD
BEGIN;
CREATE ROLE :"bridge" LOGIN PASSWORD :'password' IN ROLE :"role";
ALTER ROLE :"bridge" SET role TO :"role";
COMMIT;
SQL
  echo "rotate-password: $bridge logs in with the new password and acts as $role; next: secrets DIR bridge"
}

switch() {
  local password
  password=$(read_password)
  bridge_exists || die "$bridge does not exist: run begin first"
  refuse_while_connected "$role" "every client must use $bridge first (secrets DIR bridge, applied and rolled out)"
  NEW_PASSWORD=$password sql <<'SQL'
\getenv password NEW_PASSWORD
ALTER ROLE :"role" PASSWORD :'password';
SQL
  echo "rotate-password: $role has the new password; next: secrets DIR final"
}

end() {
  bridge_exists || die "$bridge does not exist: nothing to end"
  refuse_while_connected "$bridge" "every client must use $role again (secrets DIR final, applied and rolled out)"
  sql <<'SQL'
BEGIN;
REASSIGN OWNED BY :"bridge" TO :"role";
DROP OWNED BY :"bridge";
DROP ROLE :"bridge";
COMMIT;
SQL
  echo "rotate-password: $bridge is dropped; the rotation is complete"
}

# Rewrite one secret file in place (same mode), line by line.
rewrite() {
  local file=$1 user=$2 password=$3 key=$4 line changed=0 temp
  local url='^([A-Z_]+_DATABASE_URL)=postgresql\+psycopg2://[^:@/]+:[^@]*@(.+)$'
  [ -f "$file" ] || die "$file does not exist"
  temp=$(mktemp "$file.XXXXXX")
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $key = url && $line =~ $url ]]; then
      line="${BASH_REMATCH[1]}=postgresql+psycopg2://$user:$password@${BASH_REMATCH[2]}"
      changed=$((changed + 1))
    elif [[ $key = postgres && $line = POSTGRES_PASSWORD=* ]]; then
      line="POSTGRES_PASSWORD=$password"
      changed=$((changed + 1))
    fi
    printf '%s\n' "$line"
  done <"$file" >"$temp"
  if [ "$changed" -eq 0 ]; then
    rm -f -- "$temp"
    die "$file holds no line to change"
  fi
  chmod --reference="$file" "$temp" 2>/dev/null || chmod 600 "$temp"
  mv -- "$temp" "$file"
}

secrets() {
  local dir=$1 target=$2 password user file
  case $target in
    bridge) user=$bridge ;;
    final) user=$role ;;
    *) usage ;;
  esac
  [ -d "$dir" ] || die "$dir is not a directory (an overlay's secrets/)"
  password=$(read_password)
  for file in "${url_files[@]}"; do
    rewrite "$dir/$file" "$user" "$password" url
  done
  if [ "$target" = final ]; then
    rewrite "$dir/postgres.env" "$user" "$password" postgres
  fi
  echo "rotate-password: the database URLs in $dir use $user$([ "$target" = final ] && echo ', postgres.env the new password'); apply the overlay"
}

case "${1:-} $#" in
  "begin 1") begin ;;
  "switch 1") switch ;;
  "end 1") end ;;
  "secrets 3") secrets "$2" "$3" ;;
  *) usage ;;
esac

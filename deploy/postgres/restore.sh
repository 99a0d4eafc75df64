#!/usr/bin/env bash
# Restore a dump made by backup.sh. Never writes into an existing database:
# a restore goes into a new one, which --swap then puts in place of the live
# database (keeping the live one beside it).
#
#   restore.sh DUMP DATABASE   restore DUMP into DATABASE, created for it (refused if it exists)
#   restore.sh --check DUMP    restore DUMP into a scratch database, count its rows, drop it:
#                              the restore test
#   restore.sh --swap DATABASE rename $PGDATABASE to ${PGDATABASE}_before_restore and DATABASE
#                              to $PGDATABASE, in one transaction (refused while anyone is
#                              connected to either: stop the services first)
#
# DUMP is a path, the name of a file in BACKUP_DIR, or `latest` (the newest
# dump of $PGDATABASE in BACKUP_DIR). The server and credentials come from
# libpq's variables (PGHOST, PGPORT, PGUSER, PGPASSWORD); PGDATABASE is the
# live database. Every restore prints the rows of each table it restored.
set -euo pipefail
export LC_ALL=C

die() { echo "restore: $*" >&2; exit 1; }
usage() { sed -n '/^#   restore.sh/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

live=${PGDATABASE:?set PGDATABASE to the live database}

# psql against DATABASE, reading SQL from stdin (so that :'variables' are
# interpolated), stopping at the first error.
sql() {
  local database=$1; shift
  psql -X --no-password --quiet --no-align --tuples-only -v ON_ERROR_STOP=1 --dbname="$database" "$@"
}

exists() {
  [ "$(sql postgres -v name="$1" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name'")" = 1 ]
}

dump_file() {
  local dump=$1
  if [ "$dump" = latest ]; then
    shopt -s nullglob
    local dumps=("${BACKUP_DIR:?set BACKUP_DIR to the directory of the dumps}/$live"-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T*Z.dump)
    [ ${#dumps[@]} -gt 0 ] || die "no dump of $live in $BACKUP_DIR"
    dump=${dumps[${#dumps[@]}-1]}
  elif [[ $dump != */* && -n ${BACKUP_DIR:-} ]]; then
    dump=$BACKUP_DIR/$dump
  fi
  [ -f "$dump" ] && [ -r "$dump" ] || die "$dump is not a readable file"
  pg_restore --list "$dump" >/dev/null || die "$dump is not a dump pg_restore can read"
  echo "$dump"
}

row_counts() {
  sql "$1" <<'SQL'
SELECT format('SELECT %L || '' '' || count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
ORDER BY n.nspname, c.relname
\gexec
SQL
}

restore_into() {
  local dump=$1 database=$2
  [[ $database =~ ^[a-z_][a-z0-9_]*$ ]] || die "database names here are lower case letters, digits and _ (not '$database')"
  ! exists "$database" || die "database $database exists: restore into a new one"
  createdb --no-password --maintenance-db=postgres --template=template0 "$database"
  # In one transaction: a dump that fails to restore leaves an empty
  # database, which goes, so that the same command can run again.
  if ! pg_restore --no-password --exit-on-error --single-transaction --dbname="$database" "$dump"; then
    dropdb --no-password --maintenance-db=postgres "$database"
    die "restoring $dump failed; $database is dropped again"
  fi
  echo "restore: $dump restored into $database; rows per table:"
  row_counts "$database"
}

swap() {
  local restored=$1 before="${live}_before_restore"
  exists "$restored" || die "database $restored does not exist"
  ! exists "$before" || die "database $before exists (a previous restore's): drop or rename it first"
  # ALTER DATABASE ... RENAME refuses while anyone is connected to the database.
  sql postgres -v live="$live" -v restored="$restored" -v before="$before" <<'SQL'
BEGIN;
ALTER DATABASE :"live" RENAME TO :"before";
ALTER DATABASE :"restored" RENAME TO :"live";
COMMIT;
SQL
  echo "restore: $restored is now $live; the previous $live is $before"
}

case ${1:-} in
  --check)
    [ $# -eq 2 ] || usage
    dump=$(dump_file "$2")
    scratch="${live}_restore_check"
    if exists "$scratch"; then  # left by a check that was interrupted
      dropdb --no-password --maintenance-db=postgres "$scratch"
    fi
    restore_into "$dump" "$scratch"
    dropdb --no-password --maintenance-db=postgres "$scratch"
    echo "restore: check passed: $dump restores; $scratch is dropped again"
    ;;
  --swap)
    [ $# -eq 2 ] || usage
    swap "$2"
    ;;
  -*|'') usage ;;
  *)
    [ $# -eq 2 ] || usage
    dump=$(dump_file "$1")
    restore_into "$dump" "$2"
    ;;
esac

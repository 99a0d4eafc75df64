#!/usr/bin/env bash
# A dump of one PostgreSQL database in pg_dump's custom format (-Fc), written
# into BACKUP_DIR, keeping the newest BACKUP_KEEP dumps of that database.
#
#   BACKUP_DIR=/backups BACKUP_KEEP=7 PGHOST=postgres PGUSER=lifytp PGDATABASE=lifytp \
#     PGPASSWORD=... deploy/postgres/backup.sh
#
# The server and credentials come from libpq's variables (PGHOST, PGPORT,
# PGUSER, PGPASSWORD, PGDATABASE). The postgres-backup CronJob runs this file
# from the postgres-scripts ConfigMap. A dump is named
# <database>-<UTC time>.dump, so names sort by age; it is written under a
# hidden name and renamed once pg_restore can read its table of contents, so
# a failed or killed run never leaves a file that looks like a dump, and old
# dumps are deleted only after a new one is complete.
set -euo pipefail
export LC_ALL=C
umask 077  # a dump holds every row, password hashes included

die() { echo "backup: $*" >&2; exit 1; }

dir=${BACKUP_DIR:?set BACKUP_DIR to the directory of the dumps}
keep=${BACKUP_KEEP:-7}
database=${PGDATABASE:?set PGDATABASE to the database to dump}
[[ $keep =~ ^[1-9][0-9]*$ ]] || die "BACKUP_KEEP must be a whole number of dumps, 1 or more (not '$keep')"
[[ -d $dir && -w $dir ]] || die "$dir is not a writable directory"

# One run at a time per directory, whoever starts it (the CronJob forbids
# overlapping runs; this covers a run by hand beside it).
exec 9>"$dir/.lock"
flock --nonblock 9 || die "another backup is writing to $dir"
rm -f -- "$dir/.$database-"*.partial  # left by a run that was killed

name="$database-$(date -u +%Y%m%dT%H%M%S.%NZ).dump"
partial="$dir/.$name.partial"
trap 'rm -f -- "$partial"' EXIT

# --lock-wait-timeout: a migration holding a table lock fails the dump instead
# of stalling it until the Job's deadline.
pg_dump --format=custom --no-password --lock-wait-timeout=2min --file="$partial" "$database"
pg_restore --list "$partial" >/dev/null || die "pg_restore cannot read the new dump"
mv -- "$partial" "$dir/$name"
echo "backup: wrote $dir/$name ($(du -h -- "$dir/$name" | cut -f1))"

shopt -s nullglob
dumps=("$dir/$database"-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T*Z.dump)  # oldest first
excess=$(( ${#dumps[@]} - keep ))
if (( excess > 0 )); then
  rm -f -- "${dumps[@]:0:excess}"
  echo "backup: deleted $excess older dump(s)"
fi
echo "backup: $(( ${#dumps[@]} - (excess > 0 ? excess : 0) )) dump(s) of $database kept in $dir"

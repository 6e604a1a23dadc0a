#!/usr/bin/env bash
# Installs what corral needs on a fresh Debian machine (as root), then installs and builds.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: busybox-static for the embedded default image, the peers that tests
# and benchmarks run beside corral (runc, crun; containerd and podman drive corral-runtime), and the registry server the image tests talk to;
# containers-common's seccomp profile and gcc (a static seccomp probe) for the seccomp tests;
# containernetworking-plugins (bridge, host-local, loopback, portmap, firewall) and iptables for @corral/network.
APT_PACKAGES=(busybox-static containernetworking-plugins iptables runc crun containerd golang-github-containers-common gcc libc6-dev skopeo docker-registry umoci fuse-overlayfs fuse3 hyperfine zstd iproute2 procps openssl xz-utils bzip2 docker.io podman)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The distribution server starts itself as a service on port 5000: tests run their own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
  fi
fi

PNPM_VERSION=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null || [ "$(pnpm --version)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION"
  npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null 2>&1
fi

pnpm install --frozen-lockfile --reporter=silent 2>/dev/null || pnpm install --reporter=silent
pnpm exec turbo run build --output-logs=errors-only

# The corral command at the root: a link to the CLI's bin, which runs its bundle (issue 15);
# pnpm's shell shim in its place costs a shell and three helper programs per command.
ln -sfn ../../apps/cli/bin/corral.cjs node_modules/.bin/corral

#!/usr/bin/env bash
# Installs everything building and testing the proxy needs on a Debian 12 machine, then builds it:
# libvirt's daemon, clients and Python bindings (the real backend and real clients of the e2e tests),
# QEMU for TCG guests, Cyrus SASL and GnuTLS tools, polkit, the node-gyp toolchain, the npm packages.
# Idempotent and quick when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  libvirt-daemon libvirt-daemon-system libvirt-clients python3-libvirt qemu-system-x86
  libsasl2-dev sasl2-bin libsasl2-modules gnutls-bin openssl
  # systemd-socket-activate and systemd-analyze for the socket-activation tests and unit checks
  # (installing the package starts nothing in a container).
  systemd
  g++ make python3 procps
  # polkit for auth_unix_* = "polkit": pkcheck (the proxy's check), polkitd and a dbus-daemon the
  # polkit e2e test runs on a private bus. Neither daemon is started by installing them here.
  polkitd dbus-daemon
)

missing=()
for pkg in "${debian_packages[@]}"; do
  if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  ((EUID == 0)) || { echo "install-deps: need root to install Debian packages" >&2; exit 1; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  echo "install-deps: Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm ci wipes node_modules, which hurts when others are building in the same tree, so it runs only
# when the installed tree (npm's own record in node_modules/.package-lock.json) differs from the lock.
lock_satisfied() {
  node -e '
    const fs = require("node:fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    let have;
    try {
      have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages;
    } catch {
      process.exit(1);
    }
    for (const [path, want] of Object.entries(lock)) {
      if (path === "" || want.link) continue;
      const got = have[path];
      if (!got) {
        if (want.optional) continue; // another platform'"'"'s optional build
        process.exit(1);
      }
      if (got.version !== want.version || !fs.existsSync(path)) process.exit(1);
    }
  '
}
if ! lock_satisfied; then
  echo "install-deps: npm ci"
  npm ci --no-audit --no-fund
fi

npm run build

#!/usr/bin/env bash
# Starts the proxy doing its real job, in the foreground: installs and builds what is missing, makes
# sure the real libvirtd backend runs, links the modular daemons' default socket paths
# (/run/libvirt/virt<driver>d-sock, -sock-ro) to it, then execs bin/virtproxyd, which listens on its
# real paths /run/libvirt/libvirt-sock and libvirt-sock-ro. Arguments are passed to virtproxyd.
# libvirtd keeps its sockets in $dir because /run/libvirt/libvirt-sock is its default path too.
# Note: with those links present a plain `virsh -c qemu:///system` talks to the linked daemon socket
# itself (libvirt's client prefers modular daemons); go through the proxy with
# `?socket=/run/libvirt/libvirt-sock` or `?mode=legacy`.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=/run/libvirt/backend

bash scripts/install-deps.sh >&2
bash scripts/backend.sh start "$dir" >&2

# backend.sh made one link per driver in $dir; mirror each at the path the proxy routes to by default.
for link in "$dir"/virt*d-sock "$dir"/virt*d-sock-ro; do
  ln -sfn "$(readlink -f "$link")" "/run/libvirt/${link##*/}"
done

# libvirtd also serves libvirt's in-memory test driver, so test:///default is routed there as well.
conf=$dir/virtproxyd.conf
cat >"$conf" <<CONF
# Written by scripts/start-proxy.sh
backend_sockets = [ "test=$dir/libvirt-sock" ]
CONF

exec ./bin/virtproxyd -f "$conf" "$@"

#!/usr/bin/env bash
# Runs the real libvirtd that start-proxy.sh and the component/e2e tests use as the proxy's backend.
# Debian 12 ships libvirt 9.0 with only the monolithic libvirtd, so links named like the modular
# daemons' sockets (DIR/virtqemud-sock, DIR/virtnetworkd-sock-ro, ...) point at libvirtd's own
# sockets, and the proxy finds "its" per-driver daemons there.
#
# Usage: scripts/backend.sh start|stop|status [DIR]      (DIR defaults to /run/libvirt/backend)
#   start   reuse the libvirtd whose pid file is DIR/libvirtd.pid (prints "reused"), or start one
#           (prints "started"); DIR/started-by-us exists only while the running one is ours
#   stop    stop it, but only if started-by-us exists; remove the links
#   status  print what runs; exit 0 when the backend answers, 3 when it does not
set -euo pipefail

action=${1:-}
dir=${2:-/run/libvirt/backend}
dir=${dir%/}
pidfile=$dir/libvirtd.pid
conf=$dir/libvirtd.conf
marker=$dir/started-by-us
uri="qemu:///system?socket=$dir/libvirt-sock"
qemu_conf=/etc/libvirt/qemu.conf
drivers=(qemu network storage secret nodedev nwfilter interface lxc)
# Guests the e2e tests create are named with this prefix (test/e2e/guest.ts); stop destroys any left.
guest_prefix=vpe2e-
wait_secs=${BACKEND_WAIT_SECS:-20}

die() {
  echo "backend.sh: $*" >&2
  exit 1
}

# True while the process runs. An exited daemon can linger as a zombie for a while when PID 1 is
# slow to reap orphans (seen here), and must count as gone.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# The pid in our pid file, if that process is still a live libvirtd (pid files outlive crashes).
our_pid() {
  local pid
  [[ -r $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == libvirtd ]] && alive "$pid" || return 1
  echo "$pid"
}

# Live libvirtd processes other than ours, space separated.
other_libvirtds() {
  local pid
  for pid in $(pgrep -x libvirtd || true); do
    alive "$pid" && printf '%s ' "$pid"
  done
  return 0
}

# Without udev (containers, minimal VMs) /dev/kvm stays root:root 0600. libvirt probes QEMU with
# CAP_DAC_OVERRIDE, so the probe sees KVM, while its cache check asks whether the unprivileged qemu
# user can open /dev/kvm; that disagreement makes libvirt re-probe QEMU on nearly every call (~3 s
# each, and `virsh version` never gets fast). Give /dev/kvm the group access udev gives it on Debian.
fix_kvm_access() {
  [[ -c /dev/kvm ]] || return 0
  local user group
  user=$(sed -n 's/^[[:space:]]*user[[:space:]]*=[[:space:]]*"\(.*\)".*/\1/p' "$qemu_conf" | head -n1)
  group=$(sed -n 's/^[[:space:]]*group[[:space:]]*=[[:space:]]*"\(.*\)".*/\1/p' "$qemu_conf" | head -n1)
  user=${user:-libvirt-qemu}
  group=${group:-libvirt-qemu}
  getent passwd "$user" >/dev/null && getent group "$group" >/dev/null || return 0
  if ! setpriv --reuid="$user" --regid="$group" --init-groups test -r /dev/kvm -a -w /dev/kvm; then
    getent group kvm >/dev/null || return 0
    chgrp kvm /dev/kvm
    chmod g+rw /dev/kvm
    echo "backend.sh: gave group kvm read/write access to /dev/kvm (no udev here)" >&2
  fi
}

# libvirt's per-guest mount namespace needs mount rights that containers usually lack; guests then
# fail to start with "Failed to make path ... private". Opt out unless the admin chose a setting.
fix_qemu_conf() {
  if ! grep -Eq '^[[:space:]]*namespaces[[:space:]]*=' "$qemu_conf"; then
    printf '\n# Added by virtproxyd-ts scripts/backend.sh: no per-guest mount namespace.\nnamespaces = []\n' >>"$qemu_conf"
  fi
}

# The qemu driver hands guest stdout/stderr to virtlogd; without it every guest start fails.
ensure_virtlogd() {
  pgrep -x virtlogd >/dev/null || virtlogd -d
}

# Waits until libvirtd answers a qemu call. The first call on a fresh machine probes QEMU (~10 s on
# two cores), so each try may take long; the deadline is checked between tries.
wait_ready() {
  local deadline=$((SECONDS + wait_secs)) out
  while true; do
    if out=$(timeout 90 virsh -q -c "$uri" version 2>&1); then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      echo "backend.sh: libvirtd in $dir did not answer within ${wait_secs}s: $out" >&2
      return 1
    fi
    sleep 0.2
  done
}

make_links() {
  local d
  for d in "${drivers[@]}"; do
    ln -sfn libvirt-sock "$dir/virt${d}d-sock"
    ln -sfn libvirt-sock-ro "$dir/virt${d}d-sock-ro"
  done
}

remove_links() {
  local d
  for d in "${drivers[@]}"; do
    rm -f "$dir/virt${d}d-sock" "$dir/virt${d}d-sock-ro"
  done
}

# Running guests keep going after libvirtd exits; drop the ones tests forgot so they do not pile up.
destroy_test_guests() {
  local name
  for name in $(timeout 30 virsh -q -c "$uri" list --name 2>/dev/null || true); do
    if [[ $name == "$guest_prefix"* ]]; then
      timeout 30 virsh -q -c "$uri" destroy "$name" >/dev/null 2>&1 || true
    fi
  done
}

start() {
  local pid others
  mkdir -p "$dir"
  fix_kvm_access
  ensure_virtlogd
  if pid=$(our_pid); then
    wait_ready
    make_links
    echo reused
    return 0
  fi
  others=$(other_libvirtds)
  if [[ -n $others ]]; then
    die "a libvirtd (pid ${others% }) already runs with another pid file than $pidfile; only one" \
      "libvirtd can run on a machine (its driver state directories are fixed). Stop it or pass its DIR."
  fi
  fix_qemu_conf
  # Only the socket directory moves: the rw socket keeps libvirtd's default polkit auth, which a
  # root client passes through the uid-0 bypass, like a real system.
  printf '# Written by scripts/backend.sh\nunix_sock_dir = "%s"\n' "$dir" >"$conf"
  rm -f "$marker"
  libvirtd -d -f "$conf" -p "$pidfile" || die "libvirtd failed to start; see /var/log/libvirt/libvirtd.log"
  pid=$(our_pid) || die "libvirtd started but $pidfile names no live libvirtd"
  echo "$pid" >"$marker"
  if ! wait_ready; then
    stop >/dev/null
    exit 1
  fi
  make_links
  echo started
}

stop() {
  local pid i
  if [[ ! -e $marker ]]; then
    echo "libvirtd in $dir was not started by backend.sh; left alone"
    return 0
  fi
  if pid=$(our_pid); then
    destroy_test_guests
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "backend.sh: libvirtd $pid ignored SIGTERM for 10 s; killed" >&2
    fi
  fi
  rm -f "$marker"
  remove_links
  echo stopped
}

status() {
  local pid owner=other
  if ! pid=$(our_pid); then
    echo "not running ($pidfile names no live libvirtd)"
    return 3
  fi
  [[ -e $marker ]] && owner=backend.sh
  if timeout 30 virsh -q -c "$uri" version >/dev/null 2>&1; then
    echo "running: pid $pid, started by $owner, socket $dir/libvirt-sock"
  else
    echo "not answering: pid $pid, started by $owner, socket $dir/libvirt-sock"
    return 3
  fi
}

case $action in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start|stop|status [DIR]" ;;
esac

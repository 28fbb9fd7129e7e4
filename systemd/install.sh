#!/usr/bin/env bash
# Installs the systemd units of virtproxyd-ts: renders systemd/*.in with this checkout's paths
# into the unit directory, then reloads systemd when it runs. It enables nothing by itself; see
# docs/systemd.md for the systemctl commands.
#
# Usage: systemd/install.sh [--unitdir DIR] [--no-reload]
#   --unitdir DIR  where to write the units (default /etc/systemd/system)
#   --no-reload    do not run `systemctl daemon-reload` (e.g. when rendering for a package)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
unitdir=/etc/systemd/system
reload=1
while (($#)); do
  case $1 in
    --unitdir) unitdir=$2; shift 2 ;;
    --no-reload) reload=0; shift ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

node=$(command -v node) || { echo "install.sh: node not found on PATH" >&2; exit 1; }
[[ -f $repo/native/build/Release/virtproxyd_native.node ]] ||
  echo "install.sh: warning: the native addon is not built (npm run build)" >&2

# systemd 253 added Type=notify-reload (what libvirt 11 uses); older ones get Type=notify with an
# ExecReload that sends SIGHUP, which behaves the same for virtproxyd.
sd_version=$(systemctl --version 2>/dev/null | awk 'NR==1 {print $2}')
if [[ ${sd_version:-0} =~ ^[0-9]+$ ]] && ((sd_version >= 253)); then
  service_type=notify-reload
  exec_reload='ReloadSignal=SIGHUP'
else
  service_type=notify
  exec_reload='ExecReload=/bin/kill -HUP $MAINPID'
fi
# Debian keeps per-service environment files in /etc/default, Fedora in /etc/sysconfig.
initconfdir=/etc/default
[[ -d /etc/sysconfig && ! -d /etc/default ]] && initconfdir=/etc/sysconfig

mkdir -p "$unitdir"
for src in "$here"/*.in; do
  name=$(basename "$src" .in)
  sed -e "s|@EXEC@|$node $repo/bin/virtproxyd|" \
    -e "s|@SERVICE_TYPE@|$service_type|" \
    -e "s|@EXEC_RELOAD@|$exec_reload|" \
    -e "s|@INITCONFDIR@|$initconfdir|" \
    -e "s|@RUNSTATEDIR@|/run|" \
    -e "s|@SOCKET_MODE@|0666|" \
    "$src" >"$unitdir/$name"
  chmod 0644 "$unitdir/$name"
  echo "installed $unitdir/$name"
done
if ((reload)) && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
fi

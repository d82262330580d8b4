#!/usr/bin/env bash
# Start libvirt's daemons for the Vagrant scenario (molecule/vagrant) when they are not running, or say exactly
# what is missing and what to do. Idempotent: a second call finds both answering and changes nothing.
#   bash tests/lab/libvirt-up.sh LOGDIR
#
# The project's machines have no init system (docs/lab.md), so nothing starts the daemons that Debian's
# libvirt-daemon-system ships as systemd units: virtlogd first (libvirtd hands it every VM's console output),
# then libvirtd. Both are host-wide; this script starts them only when nothing answers, and starts no libvirt
# network (the scenario's VM has no libvirt network at all: molecule/vagrant/Vagrantfile.j2).
set -euo pipefail
logdir=${1:?usage: libvirt-up.sh LOGDIR}
URI=qemu:///system

for tool in libvirtd virtlogd virsh; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "libvirt-up: $tool is missing; run 'make setup' (installs Debian's libvirt-daemon-system and libvirt-clients)" >&2
    exit 1
  fi
done
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
mkdir -p "$logdir"

# /dev/kvm as udev would leave it (systemd's rules.d/50-udev-default.rules.in: GROUP="kvm", MODE 0660 on Debian).
# Without udev it stays root-only, and libvirt then finds its cached QEMU capabilities stale on every call and
# probes QEMU again: 4 s per virsh call here, about 68 s per VM under Vagrant. The VMs still run
# under software emulation (libvirt.driver = "qemu"); this only stops the re-probing.
if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]; then
  "${SUDO[@]}" chgrp kvm /dev/kvm
  "${SUDO[@]}" chmod 0660 /dev/kvm
fi

running() { [ -s "$1" ] && "${SUDO[@]}" kill -0 "$(cat "$1")" 2>/dev/null; }

if ! running /run/virtlogd.pid; then
  "${SUDO[@]}" virtlogd --daemon --pid-file /run/virtlogd.pid
fi
if virsh -c "$URI" version >/dev/null 2>&1; then
  exit 0
fi
if ! running /run/libvirtd.pid; then
  # libvirtd --daemon forks and returns; its log goes to the file named by LIBVIRT_LOG_OUTPUTS.
  "${SUDO[@]}" env LIBVIRT_LOG_OUTPUTS="3:file:$logdir/libvirtd.log" libvirtd --daemon --pid-file /run/libvirtd.pid
fi
for _ in $(seq 60); do
  virsh -c "$URI" version >/dev/null 2>&1 && exit 0
  sleep 1
done
{
  echo "libvirt-up: libvirtd ($(command -v libvirtd)) did not answer on $URI within 60 s. Its last lines ($logdir/libvirtd.log):"
  tail -n 15 "$logdir/libvirtd.log" 2>/dev/null | sed 's/^/  /'
  echo "libvirt-up: fix what the log names, or start your own libvirtd (systemctl start libvirtd) and run this again"
} >&2
exit 1

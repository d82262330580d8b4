#!/usr/bin/env bash
# Install the host tools that `make demo` and `make test` need, checking each one on its own.
#
#   bash tests/lab/host-deps.sh           install what is missing (apt-get; root, or sudo)
#   bash tests/lab/host-deps.sh --check   only report; exit 1 naming what is missing
#
# One row per tool: the command that must be on PATH, the Debian package that provides it, and why the
# project needs it. A machine that has some of them (a fresh one has ssh, mkfs.ext4 and often a docker
# client without a daemon) gets exactly the missing packages, not nothing.
set -euo pipefail

TOOLS=(
  "qemu-system-x86_64 qemu-system-x86 boots the lab VMs (their own kernels: IPVS, iptables)"
  "qemu-img qemu-utils creates each VM's clean overlay disk"
  "mmdebstrap mmdebstrap builds the lab's Debian images"
  "mkfs.ext4 e2fsprogs writes the VM image's file system"
  "dockerd docker.io the Docker engine for the Docker scenario (a docker client alone is not enough)"
  "docker docker.io the Docker client"
  "ssh openssh-client reaches the lab VMs"
  "ssh-keygen openssh-client makes the lab's SSH key"
  "git git lists the collection's files for ansible-test sanity"
  "shellcheck shellcheck ansible-test sanity checks the shell scripts with it (it skips the test without it)"
  # The Vagrant scenario (molecule/vagrant, docs/lab.md "Testing with Vagrant"): Debian's Vagrant, its libvirt
  # provider, and libvirt's daemons, which tests/lab/libvirt-up.sh starts (there may be no init system).
  "vagrant vagrant drives the Vagrant scenario's VM"
  "libvirtd libvirt-daemon-system runs the VM for vagrant-libvirt"
  "virtlogd libvirt-daemon-system collects the console output of libvirt's VMs (libvirtd needs it)"
  "virsh libvirt-clients reads libvirt's state (libvirt-up.sh, the box builder)"
)

# The virtual environment needs the interpreter's venv and ensurepip modules: Debian's python3 ships them in
# python3-venv, pyenv's and python.org's builds have them already.
python_ok() { "${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1; }

missing_packages=()
missing_report=()
for row in "${TOOLS[@]}"; do
  read -r tool package why <<<"$row"
  if ! command -v "$tool" >/dev/null 2>&1; then
    missing_report+=("$tool (Debian package $package): $why")
    [[ " ${missing_packages[*]} " == *" $package "* ]] || missing_packages+=("$package")
  fi
done
# vagrant-libvirt is a Vagrant plugin, not a command: Debian's package registers it system-wide; a Vagrant
# installed another way lists it in `vagrant plugin list` (slower, so asked only when the package is absent).
libvirt_plugin_ok() {
  dpkg-query --show --showformat='${Status}' vagrant-libvirt 2>/dev/null | grep -q 'install ok installed' \
    || { command -v vagrant >/dev/null 2>&1 && vagrant plugin list 2>/dev/null | grep -q '^vagrant-libvirt '; }
}
if ! libvirt_plugin_ok; then
  missing_report+=("the vagrant-libvirt plugin (Debian package vagrant-libvirt): Vagrant's libvirt provider for the Vagrant scenario")
  missing_packages+=(vagrant-libvirt)
fi
if ! python_ok; then
  missing_report+=("${PYTHON:-python3} -m venv (Debian package python3-venv): creates the pinned tools' virtual environment")
  missing_packages+=(python3-venv)
fi

if [ ${#missing_packages[@]} -eq 0 ]; then
  exit 0
fi
printf 'host-deps: missing %s\n' "${missing_report[@]}" >&2
if [ "${1:-}" = "--check" ]; then
  echo "host-deps: run 'make setup' (or: apt-get install ${missing_packages[*]})" >&2
  exit 1
fi

if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "host-deps: installing ${missing_packages[*]} needs root; run 'make setup' as root or install sudo" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "host-deps: no apt-get here; install the packages above with this system's package manager" >&2
  exit 1
fi

echo "host-deps: installing ${missing_packages[*]}" >&2
"${SUDO[@]}" apt-get update -qq
# policy-rc.d exit 101: no service is started by a package's maintainer script (there may be no init system
# here at all, as in a container); `make docker-up` starts dockerd itself when a test needs it.
policy=/usr/sbin/policy-rc.d
added_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 0755 "$policy"
  added_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing_packages[@]}" >/dev/null || status=$?
[ -z "$added_policy" ] || "${SUDO[@]}" rm -f "$policy"
if [ "$status" != 0 ]; then
  echo "host-deps: apt-get install ${missing_packages[*]} failed (exit $status); run it by hand to see apt's error" >&2
  exit "$status"
fi

# Check again: a package that installed without its command (a diverted or renamed binary) is an error too.
exec bash "$0" --check

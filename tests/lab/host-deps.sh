#!/usr/bin/env bash
# Install the host tools a target needs, checking each one on its own.
#
#   bash tests/lab/host-deps.sh [--check] [GROUP...]
#
# GROUP picks the tools by what needs them; no GROUP means every one (`make setup`):
#   python   the interpreter's venv module, for the pinned Python tools (`make venv`, hence `make build`)
#   vm       the lab's VMs: building their images, booting them, reaching them (`make demo`, the VM tests)
#   docker   the Docker engine (the Docker scenario, its image, the set-up test)
#   sanity   what ansible-test sanity calls
#   vagrant  the Vagrant scenario
# Without --check, apt-get installs what is missing (root, or sudo); with it, only report and exit 1 naming it.
#
# One row per tool: its group, the command that must be on PATH, the Debian package that provides it, and why
# the project needs it. A machine that has some of them (a fresh one has ssh, mkfs.ext4 and often a docker
# client without a daemon) gets exactly the missing packages, not nothing.
set -euo pipefail

TOOLS=(
  "vm qemu-system-x86_64 qemu-system-x86 boots the lab VMs (their own kernels: IPVS, iptables)"
  "vm qemu-img qemu-utils creates each VM's clean overlay disk"
  "vm mmdebstrap mmdebstrap builds the lab's Debian images"
  "vm mkfs.ext4 e2fsprogs writes the VM image's file system"
  "vm ssh openssh-client reaches the lab VMs"
  "vm ssh-keygen openssh-client makes the lab's SSH key"
  "docker dockerd docker.io the Docker engine for the Docker scenario (a docker client alone is not enough)"
  "docker docker docker.io the Docker client"
  "sanity git git lists the collection's files for ansible-test sanity"
  "sanity shellcheck shellcheck ansible-test sanity checks the shell scripts with it (it skips the test without it)"
  # The Vagrant scenario (molecule/vagrant, docs/lab.md "Testing with Vagrant"): Debian's Vagrant, its libvirt
  # provider, and libvirt's daemons, which tests/lab/libvirt-up.sh starts (there may be no init system).
  "vagrant vagrant vagrant drives the Vagrant scenario's VM"
  "vagrant libvirtd libvirt-daemon-system runs the VM for vagrant-libvirt"
  "vagrant virtlogd libvirt-daemon-system collects the console output of libvirt's VMs (libvirtd needs it)"
  "vagrant virsh libvirt-clients reads libvirt's state (libvirt-up.sh, the box builder)"
)
GROUPS_KNOWN=" python vm docker sanity vagrant "

check_only=
groups=()
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    *)
      [[ "$GROUPS_KNOWN" == *" $arg "* ]] || { echo "host-deps: unknown group '$arg' (known:$GROUPS_KNOWN)" >&2; exit 2; }
      groups+=("$arg")
      ;;
  esac
done
wanted() { [ ${#groups[@]} -eq 0 ] || [[ " ${groups[*]} " == *" $1 "* ]]; }

# The virtual environment needs the interpreter's venv and ensurepip modules: Debian's python3 ships them in
# python3-venv, pyenv's and python.org's builds have them already.
python_ok() { "${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1; }

missing_packages=()
missing_report=()
for row in "${TOOLS[@]}"; do
  read -r group tool package why <<<"$row"
  wanted "$group" || continue
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
if wanted vagrant && ! libvirt_plugin_ok; then
  missing_report+=("the vagrant-libvirt plugin (Debian package vagrant-libvirt): Vagrant's libvirt provider for the Vagrant scenario")
  missing_packages+=(vagrant-libvirt)
fi
if wanted python && ! python_ok; then
  missing_report+=("${PYTHON:-python3} -m venv (Debian package python3-venv): creates the pinned tools' virtual environment")
  missing_packages+=(python3-venv)
fi

if [ ${#missing_packages[@]} -eq 0 ]; then
  exit 0
fi
printf 'host-deps: missing %s\n' "${missing_report[@]}" >&2
if [ -n "$check_only" ]; then
  echo "host-deps: run 'make setup' (or: apt-get install ${missing_packages[*]})" >&2
  exit 1
fi

if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "host-deps: installing ${missing_packages[*]} needs root; run this as root or install sudo" >&2
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
exec bash "$0" --check "${groups[@]}"

# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel-module bookkeeping shared by kernel_modules and ipvs_node_info (private to the collection).

Plain functions over text, so they are tested without a kernel: the modules do the I/O.
"""

from __future__ import annotations

import re

HEADER = (
    "# Managed by Ansible (rkeops.ipvs.prereqs): kernel modules kube-proxy needs for IPVS mode.",
    "# systemd-modules-load.service loads them at boot. Local edits are overwritten.",
)
PACKAGES_TAG = "# installed-packages:"
# Commands run by the modules speak English, so that their output can be read.
C_LOCALE = dict(LANG="C", LC_ALL="C", LC_MESSAGES="C")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def read_text(path: str) -> str | None:
    """A text file's content, or None when it cannot be read (missing, unreadable, or not in this kernel)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def running_kernel_modules(release: str) -> tuple[set[str], set[str]]:
    """(loaded, built in) module names of the running kernel: /proc/modules, then its modules.builtin."""
    loaded = parse_proc_modules(read_text("/proc/modules") or "")
    builtin = parse_modules_builtin(read_text("/lib/modules/%s/modules.builtin" % release) or "")
    return loaded, builtin


def normalize(name: str) -> str:
    """Module names are the same with '-' or '_' (the kernel and kmod treat them alike)."""
    return name.strip().replace("-", "_")


def parse_proc_modules(text: str) -> set[str]:
    """Names in /proc/modules ("ip_vs 188416 6 ip_vs_rr,... Live 0x0")."""
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def parse_modules_builtin(text: str) -> set[str]:
    """Names in /lib/modules/<release>/modules.builtin ("kernel/net/netfilter/ipvs/ip_vs.ko")."""
    names = set()
    for line in text.splitlines():
        base = line.strip().rsplit("/", 1)[-1]
        if base.endswith(".ko"):
            names.add(normalize(base[:-3]))
    return names


def kernel_version(release: str) -> str:
    """'6.1.0-28-amd64' -> '6.1.0', '4.18.0-513.el8.x86_64' -> '4.18.0'; '' when unreadable."""
    match = _VERSION.match(release)
    if not match:
        return ""
    return ".".join(part or "0" for part in match.groups())


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def version_below(version: str, limit: str) -> bool:
    """True when `version` ("6.1.0") is older than `limit` ("5.9")."""
    ours, theirs = version_tuple(version), version_tuple(limit)
    width = max(len(ours), len(theirs))
    return ours + (0,) * (width - len(ours)) < theirs + (0,) * (width - len(theirs))


def render_persist_file(modules: list[str], installed_packages: list[str]) -> str:
    """The modules-load.d file: the header, the packages the role installed, one module per line."""
    lines = list(HEADER)
    if installed_packages:
        lines.append(PACKAGES_TAG + " " + " ".join(sorted(set(installed_packages))))
    lines.extend(modules)
    return "\n".join(lines) + "\n"


def parse_persist_file(text: str) -> tuple[list[str], list[str]]:
    """(modules, installed packages) from a modules-load.d file; comments (# or ;) and blanks skipped."""
    modules, packages = [], []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(PACKAGES_TAG):
            packages = line[len(PACKAGES_TAG) :].split()
        elif line and not line.startswith(("#", ";")):
            modules.append(normalize(line))
    return modules, packages


def unique(names: list[str]) -> list[str]:
    """Normalised names in their first order, without repeats."""
    seen: list[str] = []
    for raw in names:
        name = normalize(raw)
        if name and name not in seen:
            seen.append(name)
    return seen


# os-release IDs (ID, then ID_LIKE) and the Ansible OS family they belong to.
_FAMILIES = {
    "debian": "Debian",
    "ubuntu": "Debian",
    "rhel": "RedHat",
    "centos": "RedHat",
    "fedora": "RedHat",
    "rocky": "RedHat",
    "almalinux": "RedHat",
    "ol": "RedHat",
    "amzn": "RedHat",
    "suse": "Suse",
    "opensuse": "Suse",
    "sles": "Suse",
    "sle-micro": "Suse",
}


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value pairs of /etc/os-release (quotes removed)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key] = value.strip().strip("\"'")
    return values


def os_family(os_release: dict[str, str]) -> str:
    """The Ansible OS family of an os-release: its ID first, then each ID_LIKE; '' when none is known."""
    for name in [os_release.get("ID", "")] + os_release.get("ID_LIKE", "").split():
        family = _FAMILIES.get(name.lower())
        if family:
            return family
    return ""


def distribution(os_release: dict[str, str]) -> str:
    """Ansible's name for the distribution for the usual cases ('Debian', 'Ubuntu'), else the os-release NAME."""
    names = {"debian": "Debian", "ubuntu": "Ubuntu", "rhel": "RedHat", "centos": "CentOS", "rocky": "Rocky", "almalinux": "AlmaLinux"}
    return names.get(os_release.get("ID", "").lower(), os_release.get("NAME", ""))

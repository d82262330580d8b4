# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel-module bookkeeping shared by kernel_modules and ipvs_node_info (private to the collection).

Plain functions over text and sets, so they are tested without a kernel; the modules do the I/O. Where a module
stands in the running kernel is computed here only, in one vocabulary (LOADED, BUILTIN, LOADABLE, MISSING).
Runs on the nodes: Python 3.6 syntax at most (no ``X | None``, no ``list[str]`` at run time, no dataclasses).
"""

import os
import re
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from ansible.module_utils.compat.version import LooseVersion

HEADER = (
    "# Managed by Ansible (rkeops.ipvs.prereqs): kernel modules kube-proxy needs for IPVS mode.",
    "# systemd-modules-load.service loads them at boot. Local edits are overwritten.",
)

# Where the running kernel has a module.
LOADED = "loaded"  # listed in /proc/modules
BUILTIN = "builtin"  # listed in /lib/modules/<release>/modules.builtin
LOADABLE = "loadable"  # neither, but modinfo finds a module of that very name: modprobe can load it
MISSING = "missing"  # the kernel has no module of that name (or only an alias of another module)

# A note in the persisted file's header: "# key: value value ...". Keys are lower case, so the managed-by
# header lines ("# Managed by ...", "# systemd-modules-load.service loads ...") never read as notes.
_NOTE = re.compile(r"^#\s*([a-z][a-z0-9_-]*):(.*)$")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
_DOTTED = re.compile(r"^\d+(?:\.\d+)*$")


def read_text(path: str) -> Optional[str]:
    """A text file's content, or None when it cannot be read (missing, unreadable, or not in this kernel)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def running_kernel_modules(release: str) -> Tuple[Set[str], Set[str]]:
    """(loaded, built in) module names of the running kernel: /proc/modules, then its modules.builtin."""
    loaded = parse_proc_modules(read_text("/proc/modules") or "")
    builtin = parse_modules_builtin(read_text("/lib/modules/%s/modules.builtin" % release) or "")
    return loaded, builtin


def normalize(name: str) -> str:
    """Module names are the same with '-' or '_' (the kernel and kmod treat them alike)."""
    return name.strip().replace("-", "_")


def unique(names: Iterable[str]) -> List[str]:
    """Normalised names in their first order, without repeats."""
    seen: List[str] = []
    for raw in names:
        name = normalize(raw)
        if name and name not in seen:
            seen.append(name)
    return seen


def parse_proc_modules(text: str) -> Set[str]:
    """Names in /proc/modules ("ip_vs 188416 6 ip_vs_rr,... Live 0x0")."""
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def parse_modules_builtin(text: str) -> Set[str]:
    """Names in /lib/modules/<release>/modules.builtin ("kernel/net/netfilter/ipvs/ip_vs.ko")."""
    names = set()
    for line in text.splitlines():
        base = line.strip().rsplit("/", 1)[-1]
        if base.endswith(".ko"):
            names.add(normalize(base[:-3]))
    return names


def module_state(name: str, loaded: Set[str], builtin: Set[str], resolve: Callable[[str], Optional[str]]) -> str:
    """Where the running kernel has `name`. `resolve` (modinfo) is asked only when it is neither loaded nor built in.

    `resolve(name)` returns the real name modinfo resolves `name` to, or None. A name that resolves to another
    module is an alias: loading it would not list `name` in /proc/modules, so it counts as missing.
    """
    if name in loaded:
        return LOADED
    if name in builtin:
        return BUILTIN
    return LOADABLE if resolve(name) == name else MISSING


def module_states(names: Iterable[str], loaded: Set[str], builtin: Set[str], resolve: Callable[[str], Optional[str]]) -> Dict[str, str]:
    return {name: module_state(name, loaded, builtin, resolve) for name in names}


def conntrack_module(wanted: str, loaded: Set[str], builtin: Set[str], resolve: Callable[[str], Optional[str]], tree_readable: bool) -> Tuple[str, bool]:
    """(the conntrack module to load, whether the kernel was probed to choose it).

    V(auto): nf_conntrack_ipv4 where the running kernel has a module of that very name (kernels before 4.19),
    nf_conntrack otherwise; probed rather than read from the version string, since RHEL 8.3+ reports 4.18 but
    merged nf_conntrack_ipv4 into nf_conntrack (it may keep the old name as an alias, which modinfo resolves).
    Without a module tree or a loaded module to look at, nf_conntrack unprobed.
    """
    if wanted != "auto":
        return normalize(wanted), True
    legacy = "nf_conntrack_ipv4"
    if legacy in loaded or legacy in builtin:
        return legacy, True
    if not tree_readable and not loaded:
        return "nf_conntrack", False
    return (legacy if resolve(legacy) == legacy else "nf_conntrack"), True


def modinfo_resolver(module, release: str) -> Callable[[str], Optional[str]]:
    """resolve(name) for module_state: the name modinfo resolves `name` to in `release`'s tree, or None.

    Runs `modinfo` only when asked, so that an idempotent run, where every module is loaded, runs none.
    The caller sets module.run_command_environ_update to _node_commands.C_LOCALE.
    """
    modinfo = module.get_bin_path("modinfo") if os.path.isdir(os.path.join("/lib/modules", release)) else None
    cache: Dict[str, Optional[str]] = {}

    def resolve(name: str) -> Optional[str]:
        if modinfo and name not in cache:
            rc, out, _err = module.run_command([modinfo, "-k", release, "-F", "name", name])
            lines = out.strip().splitlines()
            cache[name] = None if rc != 0 else normalize(lines[0]) if lines else normalize(name)
        return cache.get(name)

    return resolve


def kernel_version(release: str) -> str:
    """'6.1.0-28-amd64' -> '6.1.0', '4.18.0-513.el8.x86_64' -> '4.18.0'; '' when unreadable."""
    match = _VERSION.match(release)
    if not match:
        return ""
    return ".".join(part or "0" for part in match.groups())


def is_version(text: str) -> bool:
    """Dotted numbers only ("5.9", "4.18.0"), the versions version_below compares."""
    return bool(_DOTTED.match(text))


def version_below(version: str, limit: str) -> bool:
    """True when `version` ("6.1.0") is older than `limit` ("5.9"); both are dotted numbers."""
    return LooseVersion(version) < LooseVersion(limit)


def render_persist_file(modules: List[str], notes: Dict[str, List[str]]) -> str:
    """The modules-load.d file: the header, the caller's notes ("# key: values", keys sorted), one module a line.

    Notes are the caller's data, kept as given; a note without values is left out.
    """
    lines = list(HEADER)
    for key in sorted(notes):
        if notes[key]:
            lines.append("# %s: %s" % (key, " ".join(notes[key])))
    lines.extend(modules)
    return "\n".join(lines) + "\n"


def parse_persist_file(text: str) -> Tuple[List[str], Dict[str, List[str]]]:
    """(modules, notes) from a modules-load.d file; other comments (# or ;) and blank lines skipped."""
    modules: List[str] = []
    notes: Dict[str, List[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        note = _NOTE.match(line)
        if note:
            notes[note.group(1)] = note.group(2).split()
        elif line and not line.startswith(("#", ";")):
            modules.append(normalize(line))
    return modules, notes

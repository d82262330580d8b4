#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ipvs_node_info
short_description: What a node's running kernel and disk offer for kube-proxy's IPVS mode
version_added: 0.1.0
description:
  - Reports, in one module execution and without changing anything, what the preflight of
    P(rkeops.ipvs.prereqs#role) needs to decide whether a node can run kube-proxy in IPVS mode.
  - The kernel release, whether C(/lib/modules/<release>) exists (and when it does not, whether a newer
    kernel is installed and waits for a reboot), and for each module of O(name) whether it is loaded
    (C(/proc/modules)), built in (C(modules.builtin)), loadable (C(modinfo)) or missing.
  - The conntrack module to load, chosen by probing the running kernel rather than by comparing version
    strings (RHEL 8.3 and later report kernel 4.18 but have merged C(nf_conntrack_ipv4) into C(nf_conntrack)).
  - Whether the commands of O(commands) are installed, whether the node is a container, and what
    O(persist_file) holds.
  - The OS family and distribution from C(/etc/os-release), the package manager, and the age of apt's package
    lists, so that the role needs no separate fact gathering.
author:
  - rkeops.ipvs maintainers (@rkeops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  facts:
    support: none
  platform:
    platforms: posix
options:
  name:
    description:
      - Kernel modules to look for. C(-) and C(_) are the same in module names.
    type: list
    elements: str
    default: [ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh]
  conntrack:
    description:
      - V(auto) picks C(nf_conntrack_ipv4) when the running kernel has a module of that name (kernels before
        4.19, except those that merged it), C(nf_conntrack) otherwise.
      - Any other value is taken as the conntrack module's name and only checked.
    type: str
    default: auto
  commands:
    description:
      - Commands to look for on the node's C(PATH), C(/usr/sbin) and C(/sbin).
    type: list
    elements: str
    default: [ipset, ipvsadm]
  persist_file:
    description:
      - The modules-load.d file written by M(rkeops.ipvs.kernel_modules), to report what it holds.
    type: path
    default: /etc/modules-load.d/rkeops-ipvs.conf
  warn_kernel_below:
    description:
      - Warn when the running kernel is older than this version. Kernels before 5.9 have known IPVS
        connection-reuse problems with kube-proxy (stale connections to deleted endpoints, 1 s delays).
      - An empty string turns the warning off.
    type: str
    default: "5.9"
"""

EXAMPLES = r"""
- name: Read the node's IPVS readiness
  rkeops.ipvs.ipvs_node_info:
    name: [ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, ip_vs_lc]
  register: __ipvs_node

- name: Show what is missing
  ansible.builtin.debug:
    var: __ipvs_node.missing
"""

RETURN = r"""
kernel_release:
  description: The running kernel's release (C(uname -r)).
  returned: always
  type: str
  sample: 6.1.0-28-amd64
kernel_version:
  description: Its numeric version.
  returned: always
  type: str
  sample: 6.1.0
modules_dir:
  description: C(/lib/modules/<release>).
  returned: always
  type: str
modules_dir_exists:
  description: Whether RV(modules_dir) exists.
  returned: always
  type: bool
other_module_trees:
  description: Other kernel releases under C(/lib/modules) (a newer one means a kernel waits for a reboot).
  returned: always
  type: list
  elements: str
reboot_required:
  description: Whether C(/run/reboot-required) exists (Debian and Ubuntu mark pending kernel upgrades with it).
  returned: always
  type: bool
proc_modules:
  description: Whether C(/proc/modules) exists (it does not in kernels built without loadable modules).
  returned: always
  type: bool
modules:
  description: For each module of O(name) and the conntrack module, V(loaded), V(builtin), V(loadable) or V(missing).
  returned: always
  type: dict
  sample: {ip_vs: loadable, ip_vs_rr: loadable, nf_conntrack: loaded}
missing:
  description: The modules that are V(missing).
  returned: always
  type: list
  elements: str
conntrack_module:
  description: The conntrack module to load.
  returned: always
  type: str
  sample: nf_conntrack
conntrack_probed:
  description: False when the kernel's module tree could not be read, so V(auto) fell back to C(nf_conntrack).
  returned: always
  type: bool
commands:
  description: For each command of O(commands), its path, or null when it is not installed.
  returned: always
  type: dict
  sample: {ipset: /usr/sbin/ipset, ipvsadm: null}
container:
  description: The container runtime when the node is a container (it then shares its host's kernel), else an empty string.
  returned: always
  type: str
  sample: docker
os_family:
  description: The Ansible OS family after C(/etc/os-release) (C(ID), then C(ID_LIKE)), or an empty string.
  returned: always
  type: str
  sample: Debian
distribution:
  description: The distribution (C(Debian), C(Ubuntu), ..., else os-release's C(NAME)).
  returned: always
  type: str
  sample: Debian
distribution_version:
  description: os-release's C(VERSION_ID).
  returned: always
  type: str
  sample: "12"
pkg_mgr:
  description: The package manager found (C(apt), C(dnf), C(yum), C(zypper)), or an empty string.
  returned: always
  type: str
  sample: apt
apt_lists_age:
  description: Seconds since apt's package lists were last updated (C(/var/lib/apt/lists)), or -1 without apt.
  returned: always
  type: int
persisted:
  description: What O(persist_file) holds.
  returned: always
  type: dict
  contains:
    exists:
      description: Whether the file exists.
      type: bool
    modules:
      description: The modules it lists.
      type: list
      elements: str
    installed_packages:
      description: The packages it records as installed for IPVS.
      type: list
      elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rkeops.ipvs.plugins.module_utils._kmod import (
    C_LOCALE,
    distribution,
    kernel_version,
    normalize,
    os_family,
    parse_os_release,
    parse_persist_file,
    read_text,
    running_kernel_modules,
    unique,
    version_below,
)


def container_runtime() -> str:
    """The container runtime this node runs in, or '' (the checks systemd-detect-virt makes)."""
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    environ = read_text("/proc/1/environ") or ""
    for entry in environ.split("\0"):
        if entry.startswith("container="):
            return entry.split("=", 1)[1] or "container"
    cgroup = read_text("/proc/1/cgroup") or ""
    for runtime in ("docker", "containerd", "kubepods", "lxc"):
        if "/%s" % runtime in cgroup:
            return runtime
    return ""


class Probe:
    def __init__(self, module: AnsibleModule, release: str):
        self.module = module
        self.release = release
        self.modules_dir = os.path.join("/lib/modules", release)
        self.proc_modules = os.path.exists("/proc/modules")
        self.loaded, self.builtin = running_kernel_modules(release)
        self.modinfo = module.get_bin_path("modinfo", opt_dirs=["/usr/sbin", "/sbin"])

    def resolve(self, name: str) -> str | None:
        """The real name modinfo resolves `name` to (aliases included), or None when it has no such module."""
        if not self.modinfo or not os.path.isdir(self.modules_dir):
            return None
        rc, out, _err = self.module.run_command([self.modinfo, "-k", self.release, "-F", "name", name], environ_update=C_LOCALE)
        out = out.strip()
        if rc != 0:
            return None
        return normalize(out.splitlines()[0]) if out else normalize(name)

    def state(self, name: str) -> str:
        if name in self.loaded:
            return "loaded"
        if name in self.builtin:
            return "builtin"
        return "loadable" if self.resolve(name) == name else "missing"

    def conntrack(self, wanted: str) -> tuple[str, bool]:
        if wanted != "auto":
            return normalize(wanted), True
        legacy = "nf_conntrack_ipv4"
        if legacy in self.loaded or legacy in self.builtin:
            return legacy, True
        if not os.path.isdir(self.modules_dir) and not self.loaded:
            return "nf_conntrack", False
        # modinfo resolves aliases: a kernel that merged nf_conntrack_ipv4 into nf_conntrack may keep the
        # old name as an alias, and loading it would not list nf_conntrack_ipv4 in /proc/modules.
        return (legacy if self.resolve(legacy) == legacy else "nf_conntrack"), True


def package_manager(module: AnsibleModule) -> str:
    for name, command in (("apt", "apt-get"), ("dnf", "dnf"), ("yum", "yum"), ("zypper", "zypper")):
        if module.get_bin_path(command, opt_dirs=["/usr/bin", "/usr/sbin", "/bin", "/sbin"]):
            return name
    return ""


def apt_lists_age() -> int:
    try:
        return int(time.time() - os.stat("/var/lib/apt/lists").st_mtime)
    except OSError:
        return -1


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="list", elements="str", default=["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"]),
            conntrack=dict(type="str", default="auto"),
            commands=dict(type="list", elements="str", default=["ipset", "ipvsadm"]),
            persist_file=dict(type="path", default="/etc/modules-load.d/rkeops-ipvs.conf"),
            warn_kernel_below=dict(type="str", default="5.9"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    release = os.uname()[2]
    probe = Probe(module, release)
    conntrack, probed = probe.conntrack(params["conntrack"])
    names = unique(params["name"] + [conntrack])
    states = {name: probe.state(name) for name in names}
    try:
        trees = sorted(entry for entry in os.listdir("/lib/modules") if entry != release)
    except OSError:
        trees = []
    persisted_text = read_text(params["persist_file"])
    persisted_modules, installed_packages = parse_persist_file(persisted_text or "")
    version = kernel_version(release)
    limit = params["warn_kernel_below"]
    if limit and version and version_below(version, limit):
        module.warn(
            "%s runs kernel %s, older than %s: IPVS in kernels before 5.9 has known connection-reuse problems with "
            "kube-proxy (traffic to deleted endpoints, 1 s connection delays); plan a kernel upgrade" % (os.uname()[1], release, limit)
        )
    os_release = parse_os_release(read_text("/etc/os-release") or read_text("/usr/lib/os-release") or "")
    module.exit_json(
        changed=False,
        os_family=os_family(os_release),
        distribution=distribution(os_release),
        distribution_version=os_release.get("VERSION_ID", ""),
        pkg_mgr=package_manager(module),
        apt_lists_age=apt_lists_age(),
        kernel_release=release,
        kernel_version=version,
        modules_dir=probe.modules_dir,
        modules_dir_exists=os.path.isdir(probe.modules_dir),
        other_module_trees=trees,
        reboot_required=os.path.exists("/run/reboot-required") or os.path.exists("/var/run/reboot-required"),
        proc_modules=probe.proc_modules,
        modules=states,
        missing=[name for name, state in states.items() if state == "missing"],
        conntrack_module=conntrack,
        conntrack_probed=probed,
        commands={name: module.get_bin_path(name, opt_dirs=["/usr/sbin", "/sbin"]) for name in params["commands"]},
        container=container_runtime(),
        persisted=dict(exists=persisted_text is not None, modules=persisted_modules, installed_packages=installed_packages),
    )


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ipvs_node_info
short_description: What a node's running kernel and disk offer for kube-proxy's IPVS mode
version_added: 0.1.0
description:
  - Reports, in one module execution and without changing anything, what the preflight of
    P(rkeops.ipvs.prereqs#role) needs to decide whether a node can run kube-proxy in IPVS mode.
  - The OS (family, distribution, version, whether the node is a container, and how many package indexes apt's
    lists hold and how old they are), so that the role needs no separate fact gathering.
  - The running kernel (release, whether C(/lib/modules/<release>) exists, and when it does not, whether a newer
    kernel is installed and waits for a reboot), and for each module of O(name) where the kernel has it.
  - The conntrack module to load, chosen by probing the running kernel rather than by comparing version
    strings (RHEL 8.3 and later report kernel 4.18 but have merged C(nf_conntrack_ipv4) into C(nf_conntrack)).
  - Whether the commands of O(commands) are installed, and what O(persist_file) holds.
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
      - Warn when the running kernel is older than this version (dotted numbers). Kernels before 5.9 have known
        IPVS connection-reuse problems with kube-proxy (stale connections to deleted endpoints, 1 s delays).
      - An empty string turns the warning off.
    type: str
    default: "5.9"
"""

EXAMPLES = r"""
- name: Read the node's IPVS readiness
  rkeops.ipvs.ipvs_node_info:
    name: [ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, ip_vs_lc]
  register: __ipvs_node

- name: Show the modules the kernel lacks
  ansible.builtin.debug:
    msg: "{{ __ipvs_node.modules | dict2items | selectattr('value', 'eq', 'missing') | map(attribute='key') | list }}"
"""

RETURN = r"""
os:
  description: The operating system, read without fact gathering.
  returned: always
  type: dict
  contains:
    family:
      description: The Ansible OS family (as C(ansible_facts['os_family'])), or an empty string when unknown.
      type: str
      sample: Debian
    distribution:
      description: The distribution, as ansible-core's C(get_distribution()) names it.
      type: str
      sample: Ubuntu
    version:
      description: The distribution's version.
      type: str
      sample: "12.11"
    container:
      description: The container runtime when the node is a container (it then shares its host's kernel), else an empty string.
      type: str
      sample: docker
    apt_lists:
      description:
        - What apt's package lists (C(/var/lib/apt/lists)) hold, judged by their content rather than by the
          directory's time, which is fresh on images whose lists were emptied (mmdebstrap's default, container
          and many cloud images) while C(apt-get install) finds no package there.
      type: dict
      contains:
        indexes:
          description:
            - How many package indexes the lists hold (C(*_Packages) files, compressed or not; C(*_Release),
              C(*_InRelease), C(*_Translation-*), C(lock) and C(partial/) do not count). 0 without apt.
          type: int
          sample: 4
        age:
          description:
            - Seconds since apt last wrote a package index there (the newest index file, or the directory
              itself when apt moved a file into it later), or -1 when there is no index.
          type: int
          sample: 86400
kernel:
  description: The running kernel and its module tree.
  returned: always
  type: dict
  contains:
    release:
      description: The running kernel's release (C(uname -r)).
      type: str
      sample: 6.1.0-28-amd64
    version:
      description: Its numeric version, or an empty string when the release does not start with one.
      type: str
      sample: 6.1.0
    proc_modules:
      description: Whether C(/proc/modules) exists (it does not in kernels built without loadable modules).
      type: bool
    modules_dir:
      description: C(/lib/modules/<release>).
      type: str
      sample: /lib/modules/6.1.0-28-amd64
    modules_dir_exists:
      description: Whether RV(kernel.modules_dir) exists.
      type: bool
    other_module_trees:
      description: Other kernel releases under C(/lib/modules) (a newer one means a kernel waits for a reboot).
      type: list
      elements: str
    reboot_required:
      description: Whether C(/run/reboot-required) exists (Debian and Ubuntu mark pending kernel upgrades with it).
      type: bool
modules:
  description:
    - For each module of O(name) and the conntrack module, where the running kernel has it, in the vocabulary
      M(rkeops.ipvs.kernel_modules) returns too.
    - V(loaded) (in C(/proc/modules)), V(builtin) (in C(modules.builtin)), V(loadable) (C(modinfo) finds a
      module of that name) or V(missing).
  returned: always
  type: dict
  sample: {ip_vs: loadable, ip_vs_rr: loadable, nf_conntrack: loaded}
conntrack:
  description: The conntrack module to load.
  returned: always
  type: dict
  contains:
    module:
      description: Its name.
      type: str
      sample: nf_conntrack
    probed:
      description: False when the kernel's module tree could not be read, so V(auto) fell back to C(nf_conntrack).
      type: bool
commands:
  description: For each command of O(commands), its path, or null when it is not installed.
  returned: always
  type: dict
  sample: {ipset: /usr/sbin/ipset, ipvsadm: null}
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
    notes:
      description: The notes its header keeps (O(rkeops.ipvs.kernel_modules#module:notes)), each a list of words.
      type: dict
      sample: {installed-packages: [ipset, ipvsadm]}
"""

import os
import re
import stat
import time
from typing import Optional

# ansible-core's distribution facts collector (ansible.module_utils.facts.system.distribution) would run here, but
# importing it imports the whole facts package (every hardware, network and virtual collector, through
# facts/__init__.py): on the lab's VMs that nearly doubled this module's payload (185 KB to 350 KB) and added 1 to
# 2 s to each execution. ansible-core's sys_info, built on the same `distro` library and already loaded by
# AnsibleModule, gives the distribution and its version at no cost; only the family table below is ours.
from ansible.module_utils import distro
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.sys_info import get_distribution, get_distribution_version

from ansible_collections.rkeops.ipvs.plugins.module_utils._kmod import (
    conntrack_module,
    is_version,
    kernel_version,
    modinfo_resolver,
    module_states,
    parse_persist_file,
    read_text,
    running_kernel_modules,
    unique,
    version_below,
)
from ansible_collections.rkeops.ipvs.plugins.module_utils._node_commands import C_LOCALE

# os-release IDs (ID, then each ID_LIKE) and their Ansible OS family, for the distributions around the supported
# families (the facts collector's OS_FAMILY_MAP, keyed by ID instead of name).
FAMILIES = {
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


def os_family(distro_id: str, like: str) -> str:
    """The Ansible OS family of an os-release ID and ID_LIKE; '' when none is known."""
    for name in [distro_id] + like.split():
        family = FAMILIES.get(name.lower())
        if family:
            return family
    return ""


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


APT_LISTS = "/var/lib/apt/lists"
# apt's package indexes are named after their URI, ending in _Packages, kept compressed when Acquire::GzipIndexes
# is set (the suffix names the compressor). The Release files alone say nothing about what can be installed.
_APT_INDEX = re.compile(r"_Packages(?:\.(?:gz|xz|lz4|zst|bz2|lzma))?$")


def apt_lists(folder: str, now: Optional[float] = None) -> dict:
    """{indexes: package index files in apt's lists, age: seconds since apt last wrote one, or -1 when none}.

    An empty lists directory is fresh (mmdebstrap, container images) yet `apt-get install` finds nothing: the
    content decides. The age is not the index files' time alone: apt gives each downloaded file the mirror's
    Last-Modified time (on the project's Debian 12 machine, right after an `apt-get update`, bookworm's main index
    carried the date of the last point release, months back), so the directory's own time, which changes when apt
    moves a newly downloaded file into it, counts too.
    """
    try:
        names = os.listdir(folder)
        folder_time = os.stat(folder).st_mtime
    except OSError:
        return dict(indexes=0, age=-1)
    indexes, newest = 0, folder_time
    for name in names:
        if not _APT_INDEX.search(name):
            continue
        try:
            info = os.stat(os.path.join(folder, name))
        except OSError:
            continue
        # An empty index holds no package (a compressed one is never empty).
        if stat.S_ISREG(info.st_mode) and info.st_size > 0:
            indexes += 1
            newest = max(newest, info.st_mtime)
    if not indexes:
        return dict(indexes=0, age=-1)
    return dict(indexes=indexes, age=max(0, int((time.time() if now is None else now) - newest)))


def other_module_trees(release: str) -> list:
    try:
        return sorted(entry for entry in os.listdir("/lib/modules") if entry != release)
    except OSError:
        return []


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
    module.run_command_environ_update = C_LOCALE
    params = module.params
    limit = params["warn_kernel_below"]
    if limit and not is_version(limit):
        module.fail_json(msg="warn_kernel_below=%r is not a version: give dotted numbers such as 5.9, or an empty string" % limit)

    release = os.uname()[2]
    modules_dir = os.path.join("/lib/modules", release)
    loaded, builtin = running_kernel_modules(release)
    resolve = modinfo_resolver(module, release)
    conntrack, probed = conntrack_module(params["conntrack"], loaded, builtin, resolve, os.path.isdir(modules_dir))
    version = kernel_version(release)
    if limit and version and version_below(version, limit):
        module.warn(
            "%s runs kernel %s, older than %s: IPVS in kernels before 5.9 has known connection-reuse problems with "
            "kube-proxy (traffic to deleted endpoints, 1 s connection delays); plan a kernel upgrade" % (os.uname()[1], release, limit)
        )
    persisted_text = read_text(params["persist_file"])
    persisted_modules, notes = parse_persist_file(persisted_text or "")
    module.exit_json(
        changed=False,
        os=dict(
            family=os_family(distro.id(), distro.like()),
            distribution=get_distribution() or "",
            version=get_distribution_version() or "",
            container=container_runtime(),
            apt_lists=apt_lists(APT_LISTS),
        ),
        kernel=dict(
            release=release,
            version=version,
            proc_modules=os.path.exists("/proc/modules"),
            modules_dir=modules_dir,
            modules_dir_exists=os.path.isdir(modules_dir),
            other_module_trees=other_module_trees(release),
            reboot_required=os.path.exists("/run/reboot-required") or os.path.exists("/var/run/reboot-required"),
        ),
        modules=module_states(unique(params["name"] + [conntrack]), loaded, builtin, resolve),
        conntrack=dict(module=conntrack, probed=probed),
        commands={name: module.get_bin_path(name) for name in params["commands"]},
        persisted=dict(exists=persisted_text is not None, modules=persisted_modules, notes=notes),
    )


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_modules
short_description: Load a set of kernel modules in one go and persist them in a modules-load.d file
version_added: 0.1.0
description:
  - Loads every module of O(name) that the running kernel does not have yet, with one C(modprobe -a) call,
    and checks in C(/proc/modules) that each one is there afterwards.
  - Writes O(persist_file), a file owned by this module under C(/etc/modules-load.d/), so that
    C(systemd-modules-load.service) loads the same modules at every boot.
  - Two layers of state are checked separately, as C(ansible.posix.sysctl) does, what the running kernel
    has now (C(/proc/modules), then C(modules.builtin)) and what is persisted on disk.
  - One module execution for the whole set, instead of one per kernel module, saves an SSH round trip per
    module on every node.
  - Older RHEL guides load IPVS modules from an executable C(/etc/sysconfig/modules/*.modules) script run by
    the legacy init scripts. On systemd hosts (Debian, Ubuntu, EL, SUSE)
    C(systemd-modules-load.service) reads C(/etc/modules-load.d/*.conf) instead; this module writes only
    that file and leaves any legacy script alone (both can coexist, since loading a loaded module does nothing).
author:
  - rkeops.ipvs maintainers (@rkeops)
attributes:
  check_mode:
    description: Runs C(modprobe --dry-run) so that a module the kernel cannot load still fails; loads and writes nothing.
    support: full
  diff_mode:
    description: Shows the persisted file before and after.
    support: full
  platform:
    description: Linux nodes with kmod (C(modprobe)) and systemd-modules-load.
    support: full
    platforms: posix
options:
  name:
    description:
      - Kernel modules to load and persist, in order. C(-) and C(_) are the same in module names.
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) loads the modules and writes O(persist_file).
      - V(absent) removes O(persist_file); with O(unload=true) it also unloads the modules of O(name) that are
        loaded (in reverse order).
    type: str
    choices: [present, absent]
    default: present
  load:
    description:
      - Load the modules into the running kernel (V(present) only). V(false) writes only the persisted file,
        for example in a container or an image build, where the kernel is not the node's.
    type: bool
    default: true
  persist_file:
    description:
      - The modules-load.d file this module owns. Its whole content is managed.
      - Its directory is created (mode C(0755)) when missing, as in minimal container images.
    type: path
    default: /etc/modules-load.d/rkeops-ipvs.conf
  installed_packages:
    description:
      - Package names to record in the persisted file's header, so that a later V(absent) run can remove
        exactly the packages that were installed for IPVS and nothing the node had before.
    type: list
    elements: str
    default: []
  unload:
    description:
      - With O(state=absent), also unload the modules of O(name) (in reverse order). Fails, and says which
        module, when one is in use (for example by kube-proxy's IPVS virtual servers).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Load the IPVS modules and keep them across reboots
  rkeops.ipvs.kernel_modules:
    name: [ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, nf_conntrack]

- name: Remove the persisted file and unload the modules
  rkeops.ipvs.kernel_modules:
    name: [ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh]
    state: absent
    unload: true
"""

RETURN = r"""
loaded:
  description: Modules this run loaded (with O(state=present)), or would load in check mode.
  returned: always
  type: list
  elements: str
  sample: [ip_vs, ip_vs_rr]
unloaded:
  description: Modules this run unloaded (with O(state=absent) and O(unload=true)).
  returned: always
  type: list
  elements: str
modules:
  description: For each module of O(name), where the running kernel has it after the run.
  returned: always
  type: dict
  sample: {ip_vs: loaded, nf_conntrack: builtin, ip_vs_sh: absent}
persist_file:
  description: The persisted file's path.
  returned: always
  type: str
  sample: /etc/modules-load.d/rkeops-ipvs.conf
persist_changed:
  description: Whether the persisted file was (or would be) written or removed.
  returned: always
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.rkeops.ipvs.plugins.module_utils._files import write_atomically
from ansible_collections.rkeops.ipvs.plugins.module_utils._kmod import (
    C_LOCALE,
    normalize,
    read_text,
    render_persist_file,
    running_kernel_modules,
    unique,
)


def where(names: list[str], loaded: set[str], builtin: set[str]) -> dict[str, str]:
    return {name: "loaded" if name in loaded else "builtin" if name in builtin else "absent" for name in names}


def run_modprobe(module: AnsibleModule, args: list[str], what: str) -> None:
    modprobe = module.get_bin_path("modprobe", required=True, opt_dirs=["/usr/sbin", "/sbin"])
    rc, _out, err = module.run_command([modprobe] + args, environ_update=C_LOCALE)
    if rc != 0:
        module.fail_json(msg="%s failed on %s (rc=%d): %s" % (what, os.uname()[1], rc, err.strip()), rc=rc, stderr=err)


def write_persist_file(module: AnsibleModule, path: str, content: str) -> None:
    directory = os.path.dirname(path) or "."
    # Minimal images may lack /etc/modules-load.d until systemd is installed; it is a plain 0755 directory.
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    write_atomically(module, path, content, ".rkeops-ipvs-", mode=0o644)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="list", elements="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            load=dict(type="bool", default=True),
            persist_file=dict(type="path", default="/etc/modules-load.d/rkeops-ipvs.conf"),
            installed_packages=dict(type="list", elements="str", default=[]),
            unload=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    names = unique(params["name"])
    if not names:
        module.fail_json(msg="name is empty: give at least one kernel module")
    bad = [name for name in names if not name.replace("_", "").isalnum()]
    if bad:
        module.fail_json(msg="not a kernel module name: %s" % ", ".join(bad))
    path = params["persist_file"]
    release = os.uname()[2]
    loaded, builtin = running_kernel_modules(release)
    result = dict(changed=False, loaded=[], unloaded=[], persist_file=path, persist_changed=False)

    before = read_text(path) if os.path.exists(path) else None
    if params["state"] == "present":
        after = render_persist_file(names, [normalize(p) for p in params["installed_packages"]])
        missing = [name for name in names if name not in loaded and name not in builtin]
        if missing and params["load"]:
            result["loaded"] = missing
            result["changed"] = True
            if module.check_mode:
                run_modprobe(module, ["--dry-run", "--all"] + missing, "modprobe --dry-run")
            else:
                run_modprobe(module, ["--all"] + missing, "modprobe")
                loaded, builtin = running_kernel_modules(release)
                absent = [name for name in missing if name not in loaded and name not in builtin]
                if absent:
                    module.fail_json(msg="modprobe succeeded but /proc/modules lacks %s on %s (kernel %s)" % (", ".join(absent), os.uname()[1], release))
    else:
        after = None
        if params["unload"]:
            # Built-in modules cannot be unloaded; only what modprobe loaded goes.
            to_unload = [name for name in reversed(names) if name in loaded]
            if to_unload:
                result["unloaded"] = to_unload
                result["changed"] = True
                flags = ["--remove", "--dry-run"] if module.check_mode else ["--remove"]
                run_modprobe(module, flags + ["--all"] + to_unload, "modprobe " + " ".join(flags))
                if not module.check_mode:
                    loaded, builtin = running_kernel_modules(release)

    if before != after:
        result["changed"] = result["persist_changed"] = True
        if module._diff:
            result["diff"] = dict(before=before or "", after=after or "", before_header=path, after_header=path)
        if not module.check_mode:
            try:
                if after is None:
                    os.unlink(path)
                else:
                    write_persist_file(module, path, after)
            except OSError as exc:
                module.fail_json(msg="cannot write %s: %s" % (path, to_native(exc)))
    result["modules"] = where(names, loaded, builtin)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

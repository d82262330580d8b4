#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

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
  notes:
    description:
      - "The caller's own bookkeeping, kept in the persisted file's header as one comment line per key,
        C(# <key>: <values>) (keys sorted, values in the order given). This module writes them and gives them no
        meaning; M(rkeops.ipvs.ipvs_node_info) reads them back as RV(rkeops.ipvs.ipvs_node_info#module:persisted.notes)."
      - Keys are lower-case words (C(a-z), C(0-9), C(-), C(_)); each value is a list of words without spaces
        (a string is split on spaces). A key with no values writes no line.
      - The prereqs role records under C(installed-packages) the packages it installed, for its rollback.
    type: dict
    default: {}
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

- name: The same, with a note kept in the file's header
  rkeops.ipvs.kernel_modules:
    name: [ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, nf_conntrack]
    notes:
      installed-packages: [ipset, ipvsadm]

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
  description:
    - For each module of O(name), where the running kernel has it after the run (before it, in check mode), in the
      vocabulary of M(rkeops.ipvs.ipvs_node_info).
    - V(loaded) (in C(/proc/modules)), V(builtin) (in C(modules.builtin)), V(loadable) (C(modinfo) finds a
      module of that name) or V(missing).
  returned: always
  type: dict
  sample: {ip_vs: loaded, nf_conntrack: builtin, ip_vs_sh: loadable}
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
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.rkeops.ipvs.plugins.module_utils._files import write_atomically
from ansible_collections.rkeops.ipvs.plugins.module_utils._kmod import (
    modinfo_resolver,
    module_states,
    read_text,
    render_persist_file,
    running_kernel_modules,
    unique,
)
from ansible_collections.rkeops.ipvs.plugins.module_utils._node_commands import C_LOCALE

_NOTE_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")


def checked_notes(module: AnsibleModule, notes: dict) -> dict:
    """notes with every value a list of words; fail_json on a key or value that would not read back the same."""
    checked = {}
    for key, value in notes.items():
        words = value.split() if isinstance(value, str) else value
        if not _NOTE_KEY.match(key):
            module.fail_json(msg="notes: key %r is not a lower-case word (a-z, 0-9, -, _)" % key)
        if not isinstance(words, list) or [word for word in words if not isinstance(word, str) or word.split() != [word]]:
            module.fail_json(msg="notes: %s must be a list of words without spaces, got %r" % (key, value))
        checked[key] = words
    return checked


def run_modprobe(module: AnsibleModule, args: list, what: str) -> None:
    modprobe = module.get_bin_path("modprobe", required=True)
    rc, _out, err = module.run_command([modprobe] + args)
    if rc != 0:
        module.fail_json(msg="%s failed (rc=%d): %s" % (what, rc, err.strip()), rc=rc, stderr=err)


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
            notes=dict(type="dict", default={}),
            unload=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = C_LOCALE
    params = module.params
    names = unique(params["name"])
    if not names:
        module.fail_json(msg="name is empty: give at least one kernel module")
    bad = [name for name in names if not name.replace("_", "").isalnum()]
    if bad:
        module.fail_json(msg="not a kernel module name: %s" % ", ".join(bad))
    notes = checked_notes(module, params["notes"])
    path = params["persist_file"]
    release = os.uname()[2]
    loaded, builtin = running_kernel_modules(release)
    result = dict(changed=False, loaded=[], unloaded=[], persist_file=path, persist_changed=False)

    before = read_text(path) if os.path.exists(path) else None
    if params["state"] == "present":
        after = render_persist_file(names, notes)
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
                    module.fail_json(msg="modprobe succeeded but /proc/modules lacks %s (kernel %s)" % (", ".join(absent), release))
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
    # modinfo runs only for a module neither loaded nor built in: none on an idempotent run.
    result["modules"] = module_states(names, loaded, builtin, modinfo_resolver(module, release))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

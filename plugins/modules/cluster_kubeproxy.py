#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cluster_kubeproxy
short_description: Set kube-proxy's proxy mode and IPVS flags in an RKE cluster.yml
version_added: 0.1.0
description:
  - Edits the C(services.kubeproxy) stanza of an RKE (v1) C(cluster.yml) in place, so that the next
    C(rke up) runs kube-proxy in IPVS (or iptables) mode with the IPVS flags you choose.
  - Only the lines of the C(services.kubeproxy) stanza change. Every other line keeps its exact bytes
    (comments, key order, indentation (2 or 4 spaces, indented or flush lists), quoting, blank lines and
    line endings). Inside the stanza, comments and keys the module does not manage stay as they are.
  - A file without C(services:) or without C(kubeproxy:) gets them, written in the file's own
    indentation style.
  - Values are written the way RKE passes them to kube-proxy. RKE hands the text of every value of
    C(extra_args) to kube-proxy as C(--flag=value), so booleans are written C(true)/C(false); YAML 1.1
    words such as C(yes) or C(on) found in the stanza are reported (see O(fix_yaml11_booleans)).
  - The file is refused, and left untouched, with a message naming the file, the line and what to do, when RKE
    would read it differently from what the module sees or not at all - invalid YAML, an unrendered Jinja
    template, more than one document, a document that is not a mapping, two C(services:) keys, two C(kubeproxy:)
    keys, C(services), C(kubeproxy), C(extra_args) or C(extra_binds) of the wrong type, a misspelt
    C(kube-proxy:), C(kube_proxy:) or C(kubeProxy:) stanza (RKE silently ignores those), keys that are not
    scalars, YAML aliases inside the stanza, C(services) or C(kubeproxy) written in flow style (C({...})) with keys
    the edit would otherwise lose - and when the file is missing or unreadable, a directory or a symlink loop, or
    an option value is bad. Duplicate keys elsewhere in the file, which RKE tolerates, are left alone.
  - The module never prints the rest of the file, which holds SSH keys, passwords and certificates;
    the diff shows only the C(services.kubeproxy) stanza.
  - Requires PyYAML on the host that runs the module (it comes with ansible-core on the controller).
author:
  - rkeops.ipvs maintainers (@rkeops)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    description: Computes the change and reports it without writing anything.
    support: full
  diff_mode:
    description: Shows the C(services.kubeproxy) stanza before and after, never the rest of the file.
    support: full
  platform:
    description: Runs on the host that holds cluster.yml (the RKE admin host, usually localhost).
    support: full
    platforms: posix
options:
  path:
    description:
      - Path of RKE's C(cluster.yml). Symbolic links are followed and the file they point to is edited.
    type: path
    required: true
    aliases: [dest]
  state:
    description:
      - V(present) sets C(proxy-mode) to O(proxy_mode) and the flags given by the other options.
      - V(absent) removes what the module manages, leaving kube-proxy on its default mode (iptables on Linux)
        C(proxy-mode), every C(ipvs-*) flag, C(masquerade-all) when O(masquerade_all) is given, the keys named
        in O(extra_args), the binds in O(extra_binds), and C(win_extra_args) when it holds exactly what the
        Windows guard (O(windows_proxy_mode)) wrote.
    type: str
    choices: [present, absent]
    default: present
  proxy_mode:
    description:
      - The kube-proxy mode written as C(proxy-mode) when O(state=present).
      - With V(iptables), the C(ipvs-*) flags are removed from C(extra_args), since they mean nothing in that mode.
    type: str
    choices: [ipvs, iptables]
    default: ipvs
  ipvs_scheduler:
    description:
      - The IPVS scheduler, written as C(ipvs-scheduler). Each scheduler needs the kernel module C(ip_vs_<name>) on
        every node (role M(rkeops.ipvs.prereqs) loads it).
      - Omitted means the flag is left as it is in the file (kube-proxy's default is V(rr)).
    type: str
    choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos]
  ipvs_strict_arp:
    description:
      - Written as C(ipvs-strict-arp). MetalLB in L2 mode and kube-vip need V(true).
    type: bool
  ipvs_exclude_cidrs:
    description:
      - CIDRs that kube-proxy must not touch when it cleans up IPVS rules, written comma-separated as
        C(ipvs-exclude-cidrs).
    type: list
    elements: str
  ipvs_tcp_timeout:
    description:
      - Idle timeout of IPVS TCP connections as a Go duration (V(900s), V(15m)); a bare number means seconds.
        Written as C(ipvs-tcp-timeout). V(0) leaves the kernel's value.
    type: str
  ipvs_tcpfin_timeout:
    description:
      - Timeout of IPVS TCP connections after FIN, as a Go duration. Written as C(ipvs-tcpfin-timeout).
    type: str
  ipvs_udp_timeout:
    description:
      - Timeout of IPVS UDP packets, as a Go duration. Written as C(ipvs-udp-timeout).
    type: str
  ipvs_sync_period:
    description:
      - Maximum interval between IPVS rule refreshes, as a Go duration greater than zero. Written as C(ipvs-sync-period).
    type: str
  ipvs_min_sync_period:
    description:
      - Minimum interval between IPVS rule refreshes, as a Go duration no longer than O(ipvs_sync_period).
        Written as C(ipvs-min-sync-period).
    type: str
  masquerade_all:
    description:
      - Written as C(masquerade-all). Omitted means the flag is left as it is in the file.
    type: bool
  extra_args:
    description:
      - Further kube-proxy flags (names without the leading dashes), merged on top of those above; a key given here wins.
      - Booleans are written V(true)/V(false) and numbers as text. A V(null) value removes that flag from the file.
    type: dict
    default: {}
  extra_binds:
    description:
      - Binds (C(host:container[:options])) that O(state=present) adds to C(services.kubeproxy.extra_binds)
        and O(state=absent) removes.
      - RKE 1.1 and later mount C(/lib/modules) into kube-proxy by themselves; a second bind to the container path
        C(/lib/modules), such as the often copied C(/usr/lib/modules:/lib/modules), makes C(rke up) fail with a
        duplicate mount point. The module adds no such bind unless you list it here, and warns when it does.
    type: list
    elements: str
    default: []
  remove_lib_modules_binds:
    description:
      - Remove every bind of C(services.kubeproxy.extra_binds) whose container path is C(/lib/modules).
      - When V(false), such binds stay and the module warns about each one.
    type: bool
    default: false
  fix_yaml11_booleans:
    description:
      - Values of C(extra_args) written as YAML 1.1 words (C(yes), C(no), C(on), C(off), C(y), C(n)) reach kube-proxy as
        that text, which its boolean flags reject. V(true) rewrites them to C(true)/C(false); V(false) only warns.
    type: bool
    default: false
  windows_proxy_mode:
    description:
      - RKE gives Windows workers C(extra_args) when C(win_extra_args) is empty, and Windows cannot run IPVS.
      - When the result sets C(proxy-mode=ipvs) and C(win_extra_args) is empty or missing, the module writes
        C(win_extra_args) with the flags Windows workers inherited so far (every flag but C(proxy-mode) and
        C(ipvs-*)) and C(proxy-mode) set to this value, so Windows workers keep running as before.
      - A C(win_extra_args) that already has flags is left alone (the module warns if it sets C(proxy-mode=ipvs)).
      - Set to an empty string to turn the guard off.
    type: str
    default: kernelspace
  backup:
    description:
      - Keep a timestamped copy of the file, with the same owner and mode, before changing it.
    type: bool
    default: false
notes:
  - The file is written through a temporary file in the same directory and renamed into place, keeping its owner,
    group and mode (cluster.yml is often V(0600)).
  - A second run with the same options reports no change and does not rewrite the file.
  - Run C(rke up --config cluster.yml) (not C(--update-only)) afterwards; playbook C(rkeops.ipvs.enable) does the whole sequence.
seealso:
  - name: RKE kube-proxy service options
    description: The services.kubeproxy stanza of cluster.yml.
    link: https://rke.docs.rancher.com/config-options/services
  - name: kube-proxy command line reference
    description: The flags written by this module.
    link: https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/
"""

EXAMPLES = r"""
- name: Switch kube-proxy to IPVS with round-robin scheduling
  rkeops.ipvs.cluster_kubeproxy:
    path: /opt/rke/cluster.yml
    ipvs_scheduler: rr
    backup: true

- name: IPVS for a cluster that runs MetalLB in L2 mode
  rkeops.ipvs.cluster_kubeproxy:
    path: /opt/rke/cluster.yml
    ipvs_strict_arp: true
    ipvs_exclude_cidrs: [10.10.0.0/16]
    masquerade_all: true

- name: Remove an old /usr/lib/modules bind that breaks rke up on RKE >= 1.1
  rkeops.ipvs.cluster_kubeproxy:
    path: /opt/rke/cluster.yml
    remove_lib_modules_binds: true

- name: Back to kube-proxy's default mode
  rkeops.ipvs.cluster_kubeproxy:
    path: /opt/rke/cluster.yml
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the file was (or, in check mode, would be) changed.
  returned: always
  type: bool
proxy_mode_before:
  description: C(extra_args.proxy-mode) before the run; V(null) when unset (kube-proxy's default, iptables on Linux).
  returned: always
  type: str
  sample: iptables
proxy_mode_after:
  description: C(extra_args.proxy-mode) after the run; V(null) when unset.
  returned: always
  type: str
  sample: ipvs
extra_args:
  description: C(services.kubeproxy.extra_args) after the run, as RKE reads it (every value a string).
  returned: always
  type: dict
  sample: {proxy-mode: ipvs, ipvs-scheduler: rr, masquerade-all: "true"}
extra_binds:
  description: C(services.kubeproxy.extra_binds) after the run.
  returned: always
  type: list
  elements: str
  sample: []
win_extra_args:
  description: C(services.kubeproxy.win_extra_args) after the run.
  returned: always
  type: dict
  sample: {proxy-mode: kernelspace}
backup_file:
  description: Path of the backup, when O(backup=true) and the file changed.
  returned: changed and backup requested
  type: str
  sample: /opt/rke/cluster.yml.12345.2026-11-21@10:00:00~
path:
  description: The file that was read (after following symbolic links).
  returned: always
  type: str
  sample: /opt/rke/cluster.yml
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: "services.kubeproxy updated: proxy-mode unset -> ipvs"
"""

import os
from typing import Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_patch import SCHEDULERS, RequestError, build_request, patch
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_yml import ClusterYmlError, read_text
from ansible_collections.rkeops.ipvs.plugins.module_utils._files import write_atomically
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import HAS_YAML, YAML_IMPORT_ERROR, YamlEditError


def argument_spec() -> dict:
    return dict(
        path=dict(type="path", required=True, aliases=["dest"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        proxy_mode=dict(type="str", default="ipvs", choices=["ipvs", "iptables"]),
        ipvs_scheduler=dict(type="str", choices=list(SCHEDULERS)),
        ipvs_strict_arp=dict(type="bool"),
        ipvs_exclude_cidrs=dict(type="list", elements="str"),
        ipvs_tcp_timeout=dict(type="str"),
        ipvs_tcpfin_timeout=dict(type="str"),
        ipvs_udp_timeout=dict(type="str"),
        ipvs_sync_period=dict(type="str"),
        ipvs_min_sync_period=dict(type="str"),
        masquerade_all=dict(type="bool"),
        extra_args=dict(type="dict", default={}),
        extra_binds=dict(type="list", elements="str", default=[]),
        remove_lib_modules_binds=dict(type="bool", default=False),
        fix_yaml11_booleans=dict(type="bool", default=False),
        windows_proxy_mode=dict(type="str", default="kernelspace"),
        backup=dict(type="bool", default=False),
    )


def read_file(module: AnsibleModule, path: str) -> tuple:
    """Resolve and read the file: (real path, text); every failure says what to do and changes nothing."""
    try:
        return read_text(path)
    except ClusterYmlError as exc:
        module.fail_json(msg=to_native(exc))


def write_file(module: AnsibleModule, real: str, text: str) -> None:
    try:
        write_atomically(module, real, text, ".cluster_kubeproxy.", unsafe_writes=module.params["unsafe_writes"])
    except OSError as exc:
        module.fail_json(msg="%s: cannot write a temporary file in %s (%s); file unchanged" % (real, os.path.dirname(real), to_native(exc)))


def describe(before: Optional[str], after: Optional[str], changed: bool) -> str:
    if not changed:
        return "services.kubeproxy already as requested"
    if before == after:
        return "services.kubeproxy updated: proxy-mode stays %s" % (after or "unset")
    return "services.kubeproxy updated: proxy-mode %s -> %s" % (before or "unset", after or "unset")


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, add_file_common_args=True)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=to_native(YAML_IMPORT_ERROR))
    path = module.params["path"]
    try:
        request = build_request(module.params)
    except RequestError as exc:
        module.fail_json(msg=to_native(exc))
    real, text = read_file(module, path)
    try:
        result = patch(text, path, request)
    except YamlEditError as exc:
        module.fail_json(msg=to_native(exc) + " (file unchanged)")

    for warning in result["warnings"]:
        module.warn(warning)
    changed = result["changed"]
    output = dict(
        changed=changed,
        path=real,
        proxy_mode_before=result["proxy_mode_before"],
        proxy_mode_after=result["proxy_mode_after"],
        extra_args=result["extra_args"],
        extra_binds=result["extra_binds"],
        win_extra_args=result["win_extra_args"],
        msg=describe(result["proxy_mode_before"], result["proxy_mode_after"], changed),
    )
    if module._diff and changed:
        output["diff"] = dict(
            before=result["before"],
            after=result["after"],
            before_header="%s (services.kubeproxy)" % path,
            after_header="%s (services.kubeproxy)" % path,
        )
    if changed and not module.check_mode:
        if module.params["backup"]:
            output["backup_file"] = module.backup_local(real)
        write_file(module, real, result["text"])

    file_args = module.load_file_common_arguments(module.params, path=real)
    output["changed"] = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(**output)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: kube_proxy_leftovers
short_description: Find and remove what kube-proxy's other mode left on a node
version_added: 0.2.0
description:
  - Since Kubernetes 1.14 kube-proxy no longer removes the rules of the mode it ran in before (kubernetes#76109),
    and no version cleans a switch between iptables and IPVS. After iptables to IPVS, the KUBE-SVC-* and
    KUBE-SEP-* chains stay in nat, and the REJECT rules of services without endpoints stay in filter's
    KUBE-SERVICES and go on rejecting traffic (kubernetes#102314). After IPVS to iptables, the IPVS virtual
    servers, the KUBE-* ipsets and the C(kube-ipvs0) device stay.
  - Given the mode kube-proxy runs in now, this module finds the other mode's leftovers and removes them, in one
    execution, without touching what the running mode uses. Chains both modes create (nat KUBE-SERVICES,
    KUBE-POSTROUTING, KUBE-MARK-MASQ, filter KUBE-FORWARD, KUBE-PROXY-FIREWALL) are judged rule by rule.
  - "It never touches other owners: CNI chains (cali-*, FLANNEL*, CNI-*, WEAVE*), DOCKER*, kubelet's chains
    (filter KUBE-FIREWALL, KUBE-MARK-DROP, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), and IPVS virtual servers
    kube-proxy did not make (keepalived's, for example): a virtual server is kube-proxy's only when its address is
    bound to C(kube-ipvs0) or listed in kube-proxy's ipsets."
  - The iptables chains are removed with one C(iptables-restore --noflush) per backend, one atomic step per table.
    A kube-proxy chain that loses only some of its rules (nat C(KUBE-SERVICES) losing its C(-j KUBE-SVC-*) rules)
    is rewritten whole in that step - its chain line, which flushes it under C(--noflush), then the rules it
    keeps, in order, verbatim, as kube-proxy's own sync does (C(pkg/proxy/iptables/proxier.go)) - so the kept
    rules' packet counters restart at 0. Built-in chains (C(PREROUTING), C(INPUT), ...) and other owners' chains
    lose only the removed rules (C(-D)), and keep the rest in place with their counters.
    Then, when IPVS leftovers are removed, the virtual servers (C(ipvsadm)), the ipsets (C(ipset destroy)) and the
    C(kube-ipvs0) device (C(ip link delete)).
  - What each proxier creates, per Kubernetes version, with sources, is in the collection's
    C(docs/research/kube-proxy-chains.md).
author:
  - rkeops.ipvs maintainers (@rkeops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what it would remove (RV(found)) and changes nothing.
  diff_mode:
    support: full
    details: The iptables lines removed (chain declarations and rules), and the ipsets, virtual servers and device.
  platform:
    platforms: posix
options:
  current_mode:
    description:
      - The mode kube-proxy runs in now on this node. The other mode's leftovers are removed.
      - Read it from kube-proxy itself (M(rkeops.ipvs.kube_proxy_info) returns C(proxy_mode)), never from what was
        asked for, since removing the running mode's rules would break the node's service traffic until kube-proxy's
        next sync.
    type: str
    required: true
    choices: [ipvs, iptables]
  backend:
    description:
      - The iptables backend to work on.
      - V(auto) works on each backend whose tables hold kube-proxy's chains (Debian 11 and later have both
        iptables-legacy and iptables-nft; kube-proxy uses whichever its image detected).
      - V(legacy) or V(nft) works on that one only (C(iptables-legacy-save) / C(iptables-nft-save), or
        C(iptables-save) when it is that backend).
    type: str
    choices: [auto, legacy, nft]
    default: auto
requirements:
  - iptables-save and iptables-restore (iptables 1.4.21 or later)
  - ipset and ipvsadm, only to find and remove IPVS leftovers (the prereqs role installs both)
notes:
  - IPv4 only (iptables, not ip6tables).
"""

EXAMPLES = r"""
- name: Remove the iptables-mode leftovers once kube-proxy runs in IPVS mode
  rkeops.ipvs.kube_proxy_leftovers:
    current_mode: ipvs
  register: __ipvs_leftovers

- name: Count the IPVS-mode leftovers after a switch back to iptables, changing nothing
  rkeops.ipvs.kube_proxy_leftovers:
    current_mode: iptables
  check_mode: true
  register: __ipvs_leftovers
"""

RETURN = r"""
found:
  description: The other mode's leftovers found on the node.
  returned: always
  type: dict
  contains:
    iptables:
      description:
        - Per table, the chains removed whole (C(chains)) and the rules outside them removed (C(rules), verbatim
          iptables-save lines). When both backends hold leftovers, their tables are listed together.
      type: dict
      sample:
        nat:
          chains: [KUBE-SVC-NPX46M4PTMTKRN6Y]
          rules:
            - -A KUBE-SERVICES -d 10.43.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP"
              -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
    ipsets:
      description: kube-proxy's ipsets (IPVS leftovers only).
      type: list
      elements: str
    ipvs_services:
      description: IPVS virtual servers kube-proxy made (IPVS leftovers only).
      type: list
      elements: str
      sample: ["TCP 10.43.0.1:443"]
    interfaces:
      description: The kube-ipvs0 device when it is an IPVS leftover.
      type: list
      elements: str
    count:
      description: How many chains, rules, ipsets, virtual servers and devices were found.
      type: int
    backends:
      description: How many chains and rules each backend worked on held (C(legacy), C(nft)).
      type: dict
      sample: {nft: 3}
removed:
  description:
    - What was removed, counted; on success it is everything RV(found) names. Zero in
      check mode and when nothing was found.
    - The rule lines are listed once, in RV(found). With 1,000 services they are thousands of strings, and each copy
      in the result costs the module's result handling time on the node.
  returned: always
  type: dict
  contains:
    count:
      description: How many chains, rules, ipsets, virtual servers and devices were removed.
      type: int
    chains:
      description: iptables chains removed, over every table and backend.
      type: int
    rules:
      description: iptables rules removed from chains that stay, over every table and backend.
      type: int
    ipsets:
      description: The ipsets destroyed.
      type: list
      elements: str
    ipvs_services:
      description: The IPVS virtual servers deleted.
      type: list
      elements: str
    interfaces:
      description: The devices deleted.
      type: list
      elements: str
backend:
  description: The backends worked on (C(legacy), C(nft), or C(legacy,nft)), or an empty string when none holds kube-proxy's chains.
  returned: always
  type: str
  sample: nft
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_find import removed_summary
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_node import gather, ipvsadm_args
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_save import restore_input
from ansible_collections.rkeops.ipvs.plugins.module_utils._node_commands import C_LOCALE, run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            current_mode=dict(type="str", required=True, choices=["ipvs", "iptables"]),
            backend=dict(type="str", default="auto", choices=["auto", "legacy", "nft"]),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = C_LOCALE
    mode, wanted = module.params["current_mode"], module.params["backend"]

    try:
        restore_args, saved, found, diff_before = gather(module, mode, wanted)
    except LookupError as exc:
        module.fail_json(msg=str(exc))
    # Per backend, the module's own plan; the result counts it (found has the names once: see RETURN, removed).
    parts = found.pop("backends")
    found["backends"] = {backend: sum(len(table["chains"]) + len(table["rules"]) for table in part.values()) for backend, part in parts.items()}
    result = dict(changed=found["count"] > 0, found=found, removed=removed_summary(None), backend=",".join(saved))
    if module._diff:
        extra = ["ipset %s" % name for name in found["ipsets"]] + ["ipvs %s" % svc for svc in found["ipvs_services"]]
        extra += ["link %s" % name for name in found["interfaces"]]
        before = "\n".join(diff_before + extra)
        result["diff"] = dict(before_header="leftovers of kube-proxy's other mode", after_header="removed", before=before + "\n" if before else "", after="")
    if module.check_mode or not found["count"]:
        module.exit_json(**result)

    # iptables first: rules that match an ipset must be gone before the set can be destroyed (kube-proxy's own
    # cleanupLeftovers does the same, pkg/proxy/ipvs/cleanup.go).
    for backend, part in parts.items():
        text = restore_input(part, saved[backend])
        if text:
            run(module, restore_args[backend], data=text, what="%s --noflush" % os.path.basename(restore_args[backend][0]))
    if found["ipvs_services"]:
        ipvsadm = module.get_bin_path("ipvsadm", required=True)
        for service in found["ipvs_services"]:
            run(module, [ipvsadm] + ipvsadm_args(service))
    if found["ipsets"]:
        ipset = module.get_bin_path("ipset", required=True)
        for name in found["ipsets"]:
            run(module, [ipset, "destroy", name])
    for name in found["interfaces"]:
        run(module, [module.get_bin_path("ip", required=True), "link", "delete", name])
    result["removed"] = removed_summary(found)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

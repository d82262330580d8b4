# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kube-proxy's other mode left behind on a node (pure functions, private to the collection).

Since Kubernetes 1.14 kube-proxy no longer cleans up after the mode it ran in before (kubernetes#76109; 1.14
CHANGELOG), and no version cleans a switch between iptables and IPVS: from 1.29 `platformCleanup` in
cmd/kube-proxy/app/server_linux.go cleans iptables and IPVS leftovers only when the new mode is nftables
(docs/research/rke-kube-proxy.md B7). `kube-proxy --cleanup` removes the running mode's rules too, and 1.21-1.24
trip over filter KUBE-NODE-PORT (kubernetes#109286). These functions find exactly the other mode's state:

* chains that only the other mode's proxier creates, in every table, with the rules elsewhere that jump to them;
* in the chains both proxiers create (nat KUBE-SERVICES, KUBE-POSTROUTING, KUBE-MARK-MASQ, filter KUBE-FORWARD,
  KUBE-PROXY-FIREWALL), the rules only the other mode writes, judged by their text, not by the chain's name;
* for IPVS leftovers: kube-proxy's ipsets, the IPVS virtual servers kube-proxy made, and the kube-ipvs0 device.

Judged by their text, the rules of every kube-proxy version from 1.20 are found without knowing the version: a chain
name never means two different things across versions. What each mode owns is in _leftovers_owners.

Python 3.6 compatible (runs on the nodes): no f-strings, no dataclasses.
"""

import re
from collections import OrderedDict

from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_owners import (
    IPVS_DEVICE,
    IPVS_IPSETS,
    MODES,
    SHARED_CHAINS,
    owned_chain,
)
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_save import parse_save

# Sets whose hash:ip,port members name IPVS virtual servers kube-proxy made ("10.43.0.1,tcp:443").
_SERVICE_SETS = ("KUBE-CLUSTER-IP", "KUBE-EXTERNAL-IP", "KUBE-EXTERNAL-IP-LOCAL", "KUBE-LOAD-BALANCER", "KUBE-LOAD-BALANCER-LOCAL")
# bitmap:port sets of node ports, per protocol.
_NODE_PORT_SETS = {"TCP": ("KUBE-NODE-PORT-TCP", "KUBE-NODE-PORT-LOCAL-TCP"), "UDP": ("KUBE-NODE-PORT-UDP", "KUBE-NODE-PORT-LOCAL-UDP")}

# The comments the iptables proxier puts on per-service rules start with the service port's name, "namespace/name"
# or "namespace/name:port" (svcPortName.String(), pkg/proxy/iptables/proxier.go); the IPVS proxier's comments in
# shared chains are fixed sentences ("Kubernetes service cluster ip + port for masquerade purpose").
_SERVICE_COMMENT = re.compile(r'--comment "?[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]')


def _other(current_mode):
    if current_mode not in MODES:
        raise ValueError("current_mode must be one of %s, not %r" % (", ".join(MODES), current_mode))
    return "iptables" if current_mode == "ipvs" else "ipvs"


def _ipvs_rule(rule, removed):
    """A rule in a shared chain that only the IPVS proxier writes: it matches one of its ipsets or jumps to one
    of its chains."""
    return any(name in IPVS_IPSETS for name in rule.sets) or rule.target in removed


def _iptables_rule(rule, removed):
    """A rule in a shared chain that only the iptables proxier writes: a per-service rule (its comment names the
    service port, e.g. nat KUBE-SERVICES `-d 10.43.0.1/32 ... "default/kubernetes:https cluster IP" ... -j
    KUBE-MARK-MASQ`, filter KUBE-PROXY-FIREWALL's DROP for KUBE-FW-* chains) or a jump to one of its chains. Rules
    that match a KUBE-* ipset are the IPVS proxier's and never count."""
    if any(name in IPVS_IPSETS for name in rule.sets):
        return False
    return rule.target in removed or bool(_SERVICE_COMMENT.search(rule.spec))


def find_iptables(current_mode, tables):
    """{table: {"chains": [...], "rules": [lines]}} for the other mode's chains and rules in a parsed model.

    "chains" are removed whole (their own rules go with them and are not listed); "rules" are the lines outside
    those chains that jump to them, or the other mode's rules in the chains both modes share.
    """
    other = _other(current_mode)
    found = OrderedDict()
    for name, table in tables.items():
        chains = [chain for chain in table["chains"] if owned_chain(other, name, chain)]
        removed = set(chains)
        shared = SHARED_CHAINS.get(name, set())
        rule_test = _ipvs_rule if other == "ipvs" else _iptables_rule
        rules = []
        for rule in table["rules"]:
            if rule.chain in removed:
                continue
            if rule.target in removed or (rule.chain in shared and rule_test(rule, removed)):
                rules.append(rule.line)
        if chains or rules:
            found[name] = {"chains": chains, "rules": rules}
    return found


def _service_key(service):
    """("TCP", "10.43.0.1", "443") from "TCP 10.43.0.1:443" (ipvsadm -Sn / our own format), None for fwmark."""
    parts = service.split()
    if len(parts) != 2 or parts[0] not in ("TCP", "UDP", "SCTP"):
        return None
    address, _colon, port = parts[1].rpartition(":")
    return parts[0], address.strip("[]"), port


def kube_proxy_service(service, members, device_addresses):
    """Whether an IPVS virtual server ("TCP 10.43.0.1:443") is one kube-proxy made.

    kube-proxy binds every cluster, external and load-balancer IP it serves to kube-ipvs0, and lists them in its
    ipsets (KUBE-CLUSTER-IP holds "10.43.0.1,tcp:443"); node-port servers listen on the node's own addresses,
    their ports listed in KUBE-NODE-PORT-TCP / -UDP (bitmap:port), or KUBE-NODE-PORT-SCTP-HASH as "ip,sctp:port".
    Anything else (keepalived's VIP, a hand-made server) is not kube-proxy's.
    """
    key = _service_key(service)
    if key is None:
        return False
    proto, address, port = key
    if address in device_addresses:
        return True
    member = "%s,%s:%s" % (address, proto.lower(), port)
    for name in _SERVICE_SETS + ("KUBE-NODE-PORT-SCTP-HASH", "KUBE-NODE-PORT-LOCAL-SCTP-HASH"):
        if member in members.get(name, ()):
            return True
    return any(port in members.get(name, ()) for name in _NODE_PORT_SETS.get(proto, ()))


def find(current_mode, iptables_save_text, ipset_list_names, ipvs_services, interfaces):
    """The other mode's leftovers on a node.

    current_mode: the mode kube-proxy runs in now (ipvs or iptables).
    iptables_save_text: the output of iptables-save (all tables) of one backend.
    ipset_list_names: the ipsets on the node: a list of names (`ipset list -n`) or a dict name -> list of members
      (as `ipset save` lists them, "10.43.0.1,tcp:443", "30080"); members let IPVS node-port servers be judged.
    ipvs_services: the IPVS virtual servers, "TCP 10.43.0.1:443" (FWM services are never kube-proxy's).
    interfaces: {device name: [its IPv4/IPv6 addresses]} of the devices that exist (only kube-ipvs0 matters).

    Returns {"iptables": {table: {"chains": [...], "rules": [...]}}, "ipsets": [...], "ipvs_services": [...],
    "interfaces": [...], "count": N}, count being chains + rules + ipsets + services + interfaces.
    """
    other = _other(current_mode)
    tables = parse_save(iptables_save_text) if isinstance(iptables_save_text, str) else iptables_save_text
    result = {"iptables": find_iptables(current_mode, tables), "ipsets": [], "ipvs_services": [], "interfaces": []}
    if other == "ipvs":
        members = ipset_list_names if isinstance(ipset_list_names, dict) else {}
        addresses = set(interfaces.get(IPVS_DEVICE, ()) or ())
        kept_sets = sets_still_used(tables, result["iptables"])
        result["ipsets"] = [name for name in ipset_list_names if name in IPVS_IPSETS and name not in kept_sets]
        result["ipvs_services"] = [service for service in ipvs_services if kube_proxy_service(service, members, addresses)]
        result["interfaces"] = [IPVS_DEVICE] if IPVS_DEVICE in interfaces else []
    result["count"] = count(result)
    return result


def sets_still_used(tables, found):
    """The ipsets that rules staying in place still match (a set in use cannot be destroyed: leave it)."""
    used = set()
    for name, table in tables.items():
        gone = found.get(name, {"chains": [], "rules": []})
        chains, lines = set(gone["chains"]), set(gone["rules"])
        for rule in table["rules"]:
            if rule.sets and rule.chain not in chains and rule.line not in lines:
                used.update(rule.sets)
    return used


def count(found):
    """The number of things a finding lists."""
    total = 0
    for table in found.get("iptables", {}).values():
        total += len(table["chains"]) + len(table["rules"])
    return total + len(found.get("ipsets", ())) + len(found.get("ipvs_services", ())) + len(found.get("interfaces", ()))


def empty():
    """A finding of nothing, in the shape find returns."""
    return {"iptables": {}, "ipsets": [], "ipvs_services": [], "interfaces": [], "count": 0}


def removed_summary(found):
    """kube_proxy_leftovers' `removed`: a finding counted (None: nothing removed)."""
    found = found or empty()
    tables = list(found["iptables"].values())
    return {
        "count": found["count"],
        "chains": sum(len(table["chains"]) for table in tables),
        "rules": sum(len(table["rules"]) for table in tables),
        "ipsets": list(found["ipsets"]),
        "ipvs_services": list(found["ipvs_services"]),
        "interfaces": list(found["interfaces"]),
    }

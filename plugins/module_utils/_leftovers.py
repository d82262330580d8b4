# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kube-proxy's other mode left behind on a node, and the commands that remove it (pure functions).

Since Kubernetes 1.14 kube-proxy no longer cleans up after the mode it ran in before (kubernetes#76109; 1.14
CHANGELOG), and no version cleans a switch between iptables and IPVS: from 1.29 `platformCleanup` in
cmd/kube-proxy/app/server_linux.go cleans iptables and IPVS leftovers only when the new mode is nftables
(docs/research/rke-kube-proxy.md B7). `kube-proxy --cleanup` removes the running mode's rules too, and 1.21-1.24
trip over filter KUBE-NODE-PORT (kubernetes#109286). This module finds exactly the other mode's state:

* chains that only the other mode's proxier creates, in every table, with the rules elsewhere that jump to them;
* in the chains both proxiers create (nat KUBE-SERVICES, KUBE-POSTROUTING, KUBE-MARK-MASQ, filter KUBE-FORWARD,
  KUBE-PROXY-FIREWALL), the rules only the other mode writes, judged by their text, not by the chain's name;
* for IPVS leftovers: kube-proxy's ipsets, the IPVS virtual servers kube-proxy made, and the kube-ipvs0 device.

What each proxier creates, per version, is in docs/research/kube-proxy-chains.md with its sources:
kubernetes pkg/proxy/iptables/proxier.go and pkg/proxy/ipvs/proxier.go (+ ipset.go, cleanup.go), read at 1.20 to
1.29 (docs/research/rke-kube-proxy.md B4) and at master (pkg/proxy/ipvs/cleanup.go, 2025).

Python 3.6 compatible (runs on the nodes): no f-strings, no dataclasses.
"""

import os
import re
from collections import Counter, OrderedDict

MODES = ("ipvs", "iptables")

# --- What each proxier owns --------------------------------------------------------------------------------------

# Chains only the iptables proxier creates (pkg/proxy/iptables/proxier.go, chain constants, 1.20 to 1.30):
# kubeServicesChain and kubeExternalServicesChain in filter (the REJECT / DROP rules of services without
# endpoints, kubernetes#102314, #123948), kubeNodePortsChain (nat, and filter for health-check node ports from
# 1.2x), kubeProxyCanaryChain (mangle, nat, filter; from 1.21, PR #97911), and the per-service chains
# servicePortChainNamePrefix KUBE-SVC-, KUBE-SVL- (1.24+, local endpoints), KUBE-EXT- (1.24+), KUBE-FW-,
# KUBE-XLB- (before 1.24), servicePortEndpointChainNamePrefix KUBE-SEP-.
IPTABLES_CHAINS = {
    "nat": {"KUBE-NODEPORTS", "KUBE-PROXY-CANARY"},
    "filter": {"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-CANARY"},
    "mangle": {"KUBE-PROXY-CANARY"},
}
IPTABLES_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-")

# Chains only the IPVS proxier creates (pkg/proxy/ipvs/proxier.go iptablesChains / iptablesCleanupChains):
# nat KUBE-NODE-PORT, KUBE-LOAD-BALANCER, and nat KUBE-FIREWALL up to 1.24 (kubelet's KUBE-FIREWALL lives in
# filter, never in nat; the 1.10-era proxier called it KUBE-FIRE-WALL, proxier.go at commit 00430b4b);
# filter KUBE-NODE-PORT (1.21+, commit 4cd1eacb, cleaned since PR #109288),
# KUBE-SOURCE-RANGES-FIREWALL (1.25+), KUBE-IPVS-FILTER (1.26+), KUBE-IPVS-OUT-FILTER (1.29+).
IPVS_CHAINS = {
    "nat": {"KUBE-NODE-PORT", "KUBE-LOAD-BALANCER", "KUBE-FIREWALL", "KUBE-FIRE-WALL"},
    "filter": {"KUBE-NODE-PORT", "KUBE-SOURCE-RANGES-FIREWALL", "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER"},
}

# Chains both proxiers create: judged rule by rule. nat KUBE-SERVICES, KUBE-POSTROUTING, KUBE-MARK-MASQ; filter
# KUBE-FORWARD, KUBE-PROXY-FIREWALL (1.25+). Their common rules (KUBE-MARK-MASQ's MARK, KUBE-POSTROUTING's
# MASQUERADE, KUBE-FORWARD's conntrack rules) are written identically by both and belong to the running mode.
SHARED_CHAINS = {
    "nat": {"KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"},
    "filter": {"KUBE-FORWARD", "KUBE-PROXY-FIREWALL"},
}

# Never touched, whatever they hold: kubelet's chains (KEP-3178: KUBE-MARK-DROP, filter KUBE-FIREWALL,
# KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) and other owners' chains (CNI plugins, Docker, firewalld...). The module
# only ever removes chains named in the two tables above or starting with IPTABLES_PREFIXES, so these lists are
# what the tests check against rather than what the code consults.
KUBELET_CHAINS = ("KUBE-MARK-DROP", "KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
FOREIGN_PREFIXES = ("cali-", "FLANNEL", "CNI-", "WEAVE", "DOCKER", "cilium", "KUBE-ROUTER", "ANTREA")

# The ipsets of the IPVS proxier (pkg/proxy/ipvs/ipset.go ipsetInfo): 1.20 names, KUBE-HEALTH-CHECK-NODE-PORT
# from 1.21, KUBE-IPVS-IPS from 1.26 (docs/research/rke-kube-proxy.md B4).
IPVS_IPSETS = (
    "KUBE-LOOP-BACK",
    "KUBE-CLUSTER-IP",
    "KUBE-EXTERNAL-IP",
    "KUBE-EXTERNAL-IP-LOCAL",
    "KUBE-LOAD-BALANCER",
    "KUBE-LOAD-BALANCER-LOCAL",
    "KUBE-LOAD-BALANCER-FW",
    "KUBE-LOAD-BALANCER-SOURCE-IP",
    "KUBE-LOAD-BALANCER-SOURCE-CIDR",
    "KUBE-NODE-PORT-TCP",
    "KUBE-NODE-PORT-LOCAL-TCP",
    "KUBE-NODE-PORT-UDP",
    "KUBE-NODE-PORT-LOCAL-UDP",
    "KUBE-NODE-PORT-SCTP-HASH",
    "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
    "KUBE-HEALTH-CHECK-NODE-PORT",
    "KUBE-IPVS-IPS",
)
# The dummy device the IPVS proxier binds service addresses to (pkg/proxy/ipvs/proxier.go defaultDummyDevice).
IPVS_DEVICE = "kube-ipvs0"
# Sets whose hash:ip,port members name IPVS virtual servers kube-proxy made ("10.43.0.1,tcp:443").
_SERVICE_SETS = ("KUBE-CLUSTER-IP", "KUBE-EXTERNAL-IP", "KUBE-EXTERNAL-IP-LOCAL", "KUBE-LOAD-BALANCER", "KUBE-LOAD-BALANCER-LOCAL")
# bitmap:port sets of node ports, per protocol.
_NODE_PORT_SETS = {"TCP": ("KUBE-NODE-PORT-TCP", "KUBE-NODE-PORT-LOCAL-TCP"), "UDP": ("KUBE-NODE-PORT-UDP", "KUBE-NODE-PORT-LOCAL-UDP")}

# The comments the iptables proxier puts on per-service rules start with the service port's name, "namespace/name"
# or "namespace/name:port" (svcPortName.String(), pkg/proxy/iptables/proxier.go); the IPVS proxier's comments in
# shared chains are fixed sentences ("Kubernetes service cluster ip + port for masquerade purpose").
_SERVICE_COMMENT = re.compile(r'--comment "?[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]')
_TABLE_ORDER = ("raw", "mangle", "nat", "filter", "security")


# --- iptables-save text ------------------------------------------------------------------------------------------


class Rule:
    """One `-A CHAIN ...` line: the chain, the line's text after `-A CHAIN ` and what it jumps to."""

    __slots__ = ("chain", "spec", "target", "sets")

    def __init__(self, chain, spec, target, sets):
        self.chain = chain
        self.spec = spec
        self.target = target
        self.sets = sets

    @property
    def line(self):
        return "-A %s %s" % (self.chain, self.spec) if self.spec else "-A %s" % self.chain


# What a rule jumps to and the ipsets it matches, read with regular expressions once the quoted strings (comments)
# are blanked out: shlex.split on every rule took 1.3 s for 1,000 services' rules on the project's machine, most of
# the module's time on an emulated node; this takes a few hundredths.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_TARGET = re.compile(r"(?:^|\s)(?:-j|--jump|-g|--goto) (\S+)")
_MATCH_SET = re.compile(r"--match-set (\S+)")


def _fast_target(spec):
    """The target of a rule without regular expressions, or None when the quick reading cannot be trusted.

    iptables-save prints the target last (`-j TARGET [its options]`), after every match and comment. So the last ` -j `
    or ` -g ` of the line is the target unless a quote follows it (it would then be inside a quoted string, or the
    target's options quote something), or the long forms appear. The regular expressions on the quote-blanked line
    (parse_rule) decide those lines; this saves them for the thousands of plain ones (1,000 services' rules parsed
    in half the time on an emulated node).
    """
    if "--jump" in spec or "--goto" in spec:
        return None
    padded = " " + spec
    cut = max(padded.rfind(" -j "), padded.rfind(" -g "))
    if cut < 0:
        return None if '"' in spec else ""
    if '"' in padded[cut:]:
        return None
    words = padded[cut + 4 :].split(None, 1)
    return words[0] if words and not words[0].startswith("-") else None


def parse_rule(line):
    """A Rule from an iptables-save `-A` line (an optional `[packets:bytes] ` counter prefix is dropped)."""
    if line.startswith("["):
        line = line.split("] ", 1)[1] if "] " in line else line
    parts = line.split(None, 2)
    chain = parts[1]
    spec = parts[2] if len(parts) > 2 else ""
    target = _fast_target(spec)
    if target is not None and "--match-set" not in spec:
        return Rule(chain, spec, target, [])
    target, sets = _regex_reading(spec)
    return Rule(chain, spec, target, sets)


def _regex_reading(spec):
    """(target, ipsets matched) of a rule, read with regular expressions once the quoted strings are blanked out."""
    bare = _QUOTED.sub('""', spec) if '"' in spec else spec
    targets = _TARGET.findall(bare)
    return targets[-1] if targets else "", _MATCH_SET.findall(bare)


def parse_save(text):
    """iptables-save output as {table: {"chains": OrderedDict(name -> policy), "rules": [Rule...]}}.

    Built-in chains carry their policy (ACCEPT, DROP), user chains "-". Comments and COMMIT lines are dropped.
    """
    tables = OrderedDict()
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], {"chains": OrderedDict(), "rules": []})
        elif current is None:
            raise ValueError("iptables-save output has a line before any *table line: %r" % line[:80])
        elif line.startswith(":"):
            parts = line[1:].split()
            current["chains"][parts[0]] = parts[1] if len(parts) > 1 else "-"
        elif line.startswith("-A ") or (line.startswith("[") and "] -A " in line):
            current["rules"].append(parse_rule(line))
        elif line == "COMMIT":
            continue
        else:
            raise ValueError("iptables-save output has a line this parser does not know: %r" % line[:80])
    return tables


def render_save(tables):
    """The iptables-save text of a parsed model (no counters), for tests and diffs."""
    out = []
    for name, table in tables.items():
        out.append("*%s" % name)
        for chain, policy in table["chains"].items():
            out.append(":%s %s [0:0]" % (chain, policy))
        out.extend(rule.line for rule in table["rules"])
        out.append("COMMIT")
    return "\n".join(out) + "\n"


# --- Finding -----------------------------------------------------------------------------------------------------


def _other(current_mode):
    if current_mode not in MODES:
        raise ValueError("current_mode must be one of %s, not %r" % (", ".join(MODES), current_mode))
    return "iptables" if current_mode == "ipvs" else "ipvs"


def owned_chain(mode, table, chain):
    """Whether `chain` in `table` is one that only `mode`'s proxier creates."""
    if mode == "iptables":
        return chain in IPTABLES_CHAINS.get(table, ()) or chain.startswith(IPTABLES_PREFIXES)
    return chain in IPVS_CHAINS.get(table, ())


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


def find(current_mode, iptables_save_text, ipset_list_names, ipvs_services, interfaces, kube_proxy_version=None):
    """The other mode's leftovers on a node.

    current_mode: the mode kube-proxy runs in now (ipvs or iptables).
    iptables_save_text: the output of iptables-save (all tables) of one backend.
    ipset_list_names: the ipsets on the node: a list of names (`ipset list -n`) or a dict name -> list of members
      (as `ipset save` lists them, "10.43.0.1,tcp:443", "30080"); members let IPVS node-port servers be judged.
    ipvs_services: the IPVS virtual servers, "TCP 10.43.0.1:443" (FWM services are never kube-proxy's).
    interfaces: {device name: [its IPv4/IPv6 addresses]} of the devices that exist (only kube-ipvs0 matters).
    kube_proxy_version: accepted for callers that know it; the rules are judged by their text, which covers every
      version from 1.20 (chain names never mean two different things across versions), so it is not consulted.

    Returns {"iptables": {table: {"chains": [...], "rules": [...]}}, "ipsets": [...], "ipvs_services": [...],
    "interfaces": [...], "count": N}, count being chains + rules + ipsets + services + interfaces.
    """
    other = _other(current_mode)
    tables = parse_save(iptables_save_text) if isinstance(iptables_save_text, str) else iptables_save_text
    result = {"iptables": find_iptables(current_mode, tables), "ipsets": [], "ipvs_services": [], "interfaces": []}
    if other == "ipvs":
        members = ipset_list_names if isinstance(ipset_list_names, dict) else {}
        addresses = set(interfaces.get(IPVS_DEVICE, ()) or ())
        kept_sets = _sets_still_used(tables, result["iptables"])
        result["ipsets"] = [name for name in ipset_list_names if name in IPVS_IPSETS and name not in kept_sets]
        result["ipvs_services"] = [service for service in ipvs_services if kube_proxy_service(service, members, addresses)]
        result["interfaces"] = [IPVS_DEVICE] if IPVS_DEVICE in interfaces else []
    result["count"] = count(result)
    return result


def _sets_still_used(tables, found):
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


def merge(first, second):
    """Two findings (one per backend) as one; iptables tables are keyed by backend in the module instead when both
    hold leftovers, so this only adds up the non-iptables parts."""
    result = {"iptables": dict(first["iptables"]), "ipsets": [], "ipvs_services": [], "interfaces": []}
    for key in ("ipsets", "ipvs_services", "interfaces"):
        for item in list(first[key]) + list(second[key]):
            if item not in result[key]:
                result[key].append(item)
    result["count"] = count(result)
    return result


# --- Removing ----------------------------------------------------------------------------------------------------


def rewritten_chain(table, chain):
    """Whether restore_input rewrites `chain` whole when it loses rules: the chains kube-proxy owns (the shared ones
    and either mode's own), which kube-proxy itself rewrites whole on every sync. kube-proxy's syncProxyRules
    writes a `:CHAIN - [0:0]` line for each of its chains into its `iptables-restore --noflush` input ("which has
    the nice effect of flushing the chain") and then every rule the chain should hold (pkg/proxy/iptables/proxier.go,
    v1.20 to v1.30: natChains / filterChains; pkg/proxy/ipvs/proxier.go writeLine(natChains, ...) likewise). Built-in
    chains (PREROUTING, OUTPUT, POSTROUTING, INPUT, FORWARD) and other owners' chains (kubelet's, CNI, Docker) are
    never rewritten: their rules keep position and counters, and only the removed ones are deleted one by one."""
    return chain in SHARED_CHAINS.get(table, ()) or owned_chain("iptables", table, chain) or owned_chain("ipvs", table, chain)


def _removed(table, part):
    """One flag per rule of a parsed table: whether a finding's part removes it. A listed line removes as many
    equal rules as it is listed, the first ones (what -D does); one pass, no list searches."""
    chains = set(part["chains"])
    pending = Counter(part["rules"])
    flags = []
    for rule in table["rules"]:
        if rule.chain in chains:
            flags.append(True)
            continue
        line = rule.line
        if pending.get(line):
            pending[line] -= 1
            flags.append(True)
        else:
            flags.append(False)
    return flags


def restore_input(found_iptables, tables):
    """The `iptables-restore --noflush` input that removes a finding's iptables part from the parsed `tables` it
    was found in. Per table:

    * each chain kube-proxy owns that loses rules (rewritten_chain: nat KUBE-SERVICES losing its 1,000 `-j
      KUBE-SVC-*` rules, say) is declared, which flushes it under --noflush, and the rules it keeps are appended
      again, in order, verbatim: one declaration instead of one `-D` per rule, each of which costs a walk of the
      whole table on iptables-legacy (the table is a single blob the kernel swaps whole). kube-proxy rewrites its
      chains the same way on every sync (pkg/proxy/iptables/proxier.go syncProxyRules);
    * rules removed from other chains (built-in ones, kubelet's, CNI's) are deleted (-D), so that everything else in
      those chains keeps its place and counters;
    * each removed chain is declared (flushed, so no chain still jumps to another) and deleted (-X): the way
      kube-proxy removes stale chains (pkg/proxy/iptables/proxier.go, "write a chain-line for it, which has the
      nice effect of flushing the chain. Then we can remove the chain").

    One COMMIT per table: each table changes in one atomic step. "" when there is nothing to remove.
    """
    out = []
    for name in sorted(found_iptables, key=lambda table: (_TABLE_ORDER + (table,)).index(table)):
        part = found_iptables[name]
        if not part["chains"] and not part["rules"]:
            continue
        table = tables[name]
        gone = set(part["chains"])
        flags = _removed(table, part)
        rewrite = OrderedDict()
        deletes = []
        for rule, removed in zip(table["rules"], flags):
            if removed and rule.chain not in gone:
                if rewritten_chain(name, rule.chain):
                    rewrite[rule.chain] = []
                else:
                    deletes.append("-D %s" % rule.line[3:])
        for rule, removed in zip(table["rules"], flags):
            if not removed and rule.chain in rewrite:
                rewrite[rule.chain].append(rule.line)
        out.append("*%s" % name)
        out.extend(":%s - [0:0]" % chain for chain in list(rewrite) + part["chains"])
        for kept in rewrite.values():
            out.extend(kept)
        out.extend(deletes)
        out.extend("-X %s" % chain for chain in part["chains"])
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def apply(tables, found_iptables):
    """The parsed model with a finding's iptables part removed (what the node holds after restore_input ran)."""
    result = OrderedDict()
    for name, table in tables.items():
        part = found_iptables.get(name, {"chains": [], "rules": []})
        chains = set(part["chains"])
        rules = [rule for rule, removed in zip(table["rules"], _removed(table, part)) if not removed]
        result[name] = {"chains": OrderedDict((c, p) for c, p in table["chains"].items() if c not in chains), "rules": rules}
    return result


def diff_lines(tables, found_iptables):
    """The removed lines, per table, as iptables-save would list them (chain declarations and every rule)."""
    out = []
    for name, table in tables.items():
        part = found_iptables.get(name)
        if not part:
            continue
        chains, lines = set(part["chains"]), set(part["rules"])
        out.append("*%s" % name)
        out.extend(":%s - [0:0]" % chain for chain in part["chains"])
        out.extend(rule.line for rule in table["rules"] if rule.chain in chains or rule.line in lines)
    return out


def ipvsadm_args(service):
    """ipvsadm's arguments deleting a virtual server ("TCP 10.43.0.1:443" -> ["-D", "-t", "10.43.0.1:443"])."""
    proto, address = service.split()
    flag = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}[proto]
    return ["-D", flag, address]


def parse_ipvsadm_save(text):
    """Virtual servers from `ipvsadm -S -n` ("-A -t 10.43.0.1:443 -s rr") as "TCP 10.43.0.1:443"; fwmark ones as
    "FWM <mark>"."""
    names = {"-t": "TCP", "--tcp-service": "TCP", "-u": "UDP", "--udp-service": "UDP", "--sctp-service": "SCTP", "-f": "FWM", "--fwmark-service": "FWM"}
    services = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in ("-A", "--add-service") and words[1] in names:
            services.append("%s %s" % (names[words[1]], words[2]))
    return services


def parse_ipset_save(text):
    """{set name: [members]} from `ipset save` ("create NAME type ..." and "add NAME MEMBER" lines)."""
    sets = OrderedDict()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "create":
            sets.setdefault(words[1], [])
        elif len(words) >= 3 and words[0] == "add":
            sets.setdefault(words[1], []).append(words[2])
    return sets


# --- Reading the node (module is an AnsibleModule, or anything with its get_bin_path / run_command / fail_json) ----

SBIN = ["/usr/sbin", "/sbin"]


# The commands of each backend: the suffixed names Debian's and RHEL 8's iptables packages install, then the plain
# names, whose backend `iptables --version` tells ("v1.8.9 (nf_tables)" / "(legacy)"; 1.4.x is legacy only).
BACKENDS = ("legacy", "nft")
# kubelet's chains are KUBE-* too; they do not show that kube-proxy wrote to a backend.
_NOT_KUBE_PROXY = ("KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT", "KUBE-FIREWALL", "KUBE-MARK-DROP")


def backend_commands(module):
    """{backend: (save, restore)} for the backends this node has."""
    found = {}
    for backend in BACKENDS:
        save = module.get_bin_path("iptables-%s-save" % backend, opt_dirs=SBIN)
        restore = module.get_bin_path("iptables-%s-restore" % backend, opt_dirs=SBIN)
        if save and restore:
            found[backend] = (save, restore)
    if not found:
        save = module.get_bin_path("iptables-save", opt_dirs=SBIN)
        restore = module.get_bin_path("iptables-restore", opt_dirs=SBIN)
        iptables = module.get_bin_path("iptables", opt_dirs=SBIN)
        if save and restore:
            version = module.run_command([iptables, "--version"])[1] if iptables else ""
            found["nft" if "nf_tables" in version else "legacy"] = (save, restore)
    return found


def holds_kube_proxy(tables):
    return any(chain.startswith("KUBE-") and chain not in _NOT_KUBE_PROXY for table in tables.values() for chain in table["chains"])


def run(module, args, data=None, what=""):
    """A command's stdout; fail_json naming the command and its error when it fails."""
    rc, out, err = module.run_command(args, data=data, binary_data=True)
    if rc != 0:
        module.fail_json(msg="%s failed (rc %d): %s" % (what or " ".join(args), rc, (err or out).strip()), rc=rc, stderr=err, stdout=out)
    return out


def ipvs_servers_in_kernel():
    """Whether /proc/net/ip_vs lists a virtual server (after its three header lines)."""
    try:
        with open("/proc/net/ip_vs") as stream:
            return len(stream.read().splitlines()) > 3
    except OSError:
        return False


def ipvs_state(module, needed):
    """(ipset members by set, virtual servers, {device: addresses}) as the node has them now."""
    sets, services, interfaces = {}, [], {}
    if not needed:
        return sets, services, interfaces
    ipset = module.get_bin_path("ipset", opt_dirs=SBIN)
    if ipset:
        sets = parse_ipset_save(run(module, [ipset, "save"], what="ipset save"))
    ipvsadm = module.get_bin_path("ipvsadm", opt_dirs=SBIN)
    if ipvsadm:
        services = parse_ipvsadm_save(run(module, [ipvsadm, "-S", "-n"], what="ipvsadm -S -n"))
    elif ipvs_servers_in_kernel():
        module.fail_json(
            msg="The kernel holds IPVS virtual servers but ipvsadm is not installed: install ipvsadm (the rkeops.ipvs.prereqs role does), then run again"
        )
    if os.path.exists("/sys/class/net/%s" % IPVS_DEVICE):
        ip = module.get_bin_path("ip", opt_dirs=SBIN, required=True)
        out = run(module, [ip, "-o", "addr", "show", "dev", IPVS_DEVICE])
        interfaces[IPVS_DEVICE] = [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]
    return sets, services, interfaces


def gather(module, current_mode, backend="auto"):
    """Read the node and find the other mode's leftovers, in one go (kube_proxy_leftovers and kube_proxy_info).

    Returns (restore commands {backend: argv} and parsed tables {backend: tables} of the backends worked on, found,
    diff lines). Raises LookupError with an operator's message when the wanted backend or iptables is missing, or
    iptables-save prints what this parser does not know.
    """
    commands = backend_commands(module)
    if backend != "auto" and backend not in commands:
        raise LookupError(
            "backend=%s: this node has no iptables-%s-save / iptables-%s-restore; use backend=auto or install that backend" % (backend, backend, backend)
        )
    if not commands:
        raise LookupError("Neither iptables-legacy-save, iptables-nft-save nor iptables-save is installed: install iptables")
    saved, restore_args = OrderedDict(), {}
    for name in BACKENDS:
        if name in commands and backend in ("auto", name):
            text = run(module, [commands[name][0]], what=os.path.basename(commands[name][0]))
            try:
                tables = parse_save(text)
            except ValueError as exc:
                raise LookupError("%s: %s; nothing was changed" % (os.path.basename(commands[name][0]), exc)) from exc
            if backend == name or holds_kube_proxy(tables):
                saved[name] = tables
                restore_args[name] = [commands[name][1], "--noflush"] + wait_args(text)

    sets, services, interfaces = ipvs_state(module, current_mode == "iptables")
    found = empty()
    found["backends"] = OrderedDict()
    diff_before = []
    for name, tables in saved.items():
        part = find(current_mode, tables, sets, services, interfaces)
        found["backends"][name] = part["iptables"]
        for table, chains in part["iptables"].items():
            into = found["iptables"].setdefault(table, {"chains": [], "rules": []})
            into["chains"].extend(chains["chains"])
            into["rules"].extend(chains["rules"])
        if part["iptables"]:
            diff_before.append("# iptables-%s" % name)
            diff_before.extend(diff_lines(tables, part["iptables"]))
    part = find(current_mode, "", sets, services, interfaces) if not saved else part
    if current_mode == "iptables":
        # The ipsets still matched by rules that stay, in any backend, are left in place (they cannot be destroyed).
        used = set()
        for name, tables in saved.items():
            used |= _sets_still_used(tables, found["backends"][name])
        found["ipsets"] = [item for item in part["ipsets"] if item not in used]
        found["ipvs_services"] = part["ipvs_services"]
        found["interfaces"] = part["interfaces"]
    found["count"] = count(found)
    return restore_args, saved, found, diff_before


_SAVE_VERSION = re.compile(r"^# Generated by (?:iptables|xtables)-save v(\d+)\.(\d+)\.(\d+)", re.M)


def wait_args(save_text):
    """`-w 5` when the iptables that printed save_text has iptables-restore --wait (1.6.2 and later), as kube-proxy
    does (pkg/util/iptables/iptables.go, WaitRestoreMinVersion): kube-proxy itself holds the xtables lock while it
    syncs, and a restore without --wait fails instead of waiting its turn."""
    match = _SAVE_VERSION.search(save_text)
    if match and tuple(int(part) for part in match.groups()) >= (1, 6, 2):
        return ["-w", "5"]
    return []

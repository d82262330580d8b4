# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each kube-proxy mode owns on a node: its chains, per table, its ipsets and its device (private to the collection).

Read by the finding (_leftovers_find) and the removal (_leftovers_save.restore_input) of kube_proxy_leftovers.
What each proxier creates, per version, is in docs/research/kube-proxy-chains.md with its sources:
kubernetes pkg/proxy/iptables/proxier.go and pkg/proxy/ipvs/proxier.go (+ ipset.go, cleanup.go), read at 1.20 to
1.29 (docs/research/rke-kube-proxy.md B4) and at master (pkg/proxy/ipvs/cleanup.go, 2025).

Python 3.6 compatible (runs on the nodes): no f-strings, no dataclasses.
"""

MODES = ("ipvs", "iptables")

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
# KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) and other owners' chains (CNI plugins, Docker, firewalld...): only chains
# named in IPTABLES_CHAINS or IPVS_CHAINS, or starting with IPTABLES_PREFIXES, are ever removed.

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


def owned_chain(mode, table, chain):
    """Whether `chain` in `table` is one that only `mode`'s proxier creates."""
    if mode == "iptables":
        return chain in IPTABLES_CHAINS.get(table, ()) or chain.startswith(IPTABLES_PREFIXES)
    return chain in IPVS_CHAINS.get(table, ())


def rewritten_chain(table, chain):
    """Whether restore_input rewrites `chain` whole when it loses rules: the chains kube-proxy owns (the shared ones
    and either mode's own), which kube-proxy itself rewrites whole on every sync. kube-proxy's syncProxyRules
    writes a `:CHAIN - [0:0]` line for each of its chains into its `iptables-restore --noflush` input ("which has
    the nice effect of flushing the chain") and then every rule the chain should hold (pkg/proxy/iptables/proxier.go,
    v1.20 to v1.30: natChains / filterChains; pkg/proxy/ipvs/proxier.go writeLine(natChains, ...) likewise). Built-in
    chains (PREROUTING, OUTPUT, POSTROUTING, INPUT, FORWARD) and other owners' chains (kubelet's, CNI, Docker) are
    never rewritten: their rules keep position and counters, and only the removed ones are deleted one by one."""
    return chain in SHARED_CHAINS.get(table, ()) or owned_chain("iptables", table, chain) or owned_chain("ipvs", table, chain)

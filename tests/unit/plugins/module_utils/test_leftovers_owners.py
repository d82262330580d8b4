"""_leftovers_owners: which chains only one kube-proxy mode creates, and which ones the removal rewrites whole.

The names are written out here from kubernetes' sources (pkg/proxy/iptables/proxier.go, pkg/proxy/ipvs/proxier.go,
pkg/kubelet/kubelet_network_linux.go), not taken from the module's tables.
"""

from __future__ import annotations

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_owners import MODES, owned_chain, rewritten_chain

# (table, chain) that only the iptables proxier creates.
IPTABLES_ONLY = [
    ("nat", "KUBE-NODEPORTS"),
    ("nat", "KUBE-SVC-NPX46M4PTMTKRN6Y"),
    ("nat", "KUBE-SEP-A5QBG5ZDIPEJKPKQ"),
    ("nat", "KUBE-EXT-XKQ2JNRZW3TOVQFD"),
    ("nat", "KUBE-SVL-XKQ2JNRZW3TOVQFD"),
    ("nat", "KUBE-FW-XKQ2JNRZW3TOVQFD"),
    ("nat", "KUBE-XLB-XKQ2JNRZW3TOVQFD"),
    ("filter", "KUBE-SERVICES"),
    ("filter", "KUBE-EXTERNAL-SERVICES"),
    ("filter", "KUBE-NODEPORTS"),
    ("mangle", "KUBE-PROXY-CANARY"),
]
# (table, chain) that only the IPVS proxier creates.
IPVS_ONLY = [
    ("nat", "KUBE-NODE-PORT"),
    ("nat", "KUBE-LOAD-BALANCER"),
    ("nat", "KUBE-FIREWALL"),
    ("filter", "KUBE-NODE-PORT"),
    ("filter", "KUBE-SOURCE-RANGES-FIREWALL"),
    ("filter", "KUBE-IPVS-FILTER"),
    ("filter", "KUBE-IPVS-OUT-FILTER"),
]
# Both proxiers write these (nat KUBE-SERVICES, KUBE-POSTROUTING, KUBE-MARK-MASQ, filter KUBE-FORWARD).
SHARED = [("nat", "KUBE-SERVICES"), ("nat", "KUBE-POSTROUTING"), ("nat", "KUBE-MARK-MASQ"), ("filter", "KUBE-FORWARD")]
# kubelet's chains, built-in chains and other owners' chains: never kube-proxy's.
NEVER = [
    ("nat", "KUBE-MARK-DROP"),
    ("filter", "KUBE-FIREWALL"),
    ("mangle", "KUBE-KUBELET-CANARY"),
    ("mangle", "KUBE-IPTABLES-HINT"),
    ("nat", "PREROUTING"),
    ("filter", "INPUT"),
    ("filter", "FORWARD"),
    ("nat", "cali-PREROUTING"),
    ("nat", "FLANNEL-POSTRTG"),
    ("nat", "CNI-HOSTPORT-DNAT"),
    ("filter", "DOCKER-USER"),
    ("filter", "KUBE-ROUTER-INPUT"),
]


@pytest.mark.parametrize(("table", "chain"), IPTABLES_ONLY + IPVS_ONLY + SHARED + NEVER)
def test_owned_chain_names_one_mode_only(table, chain):
    owners = [mode for mode in MODES if owned_chain(mode, table, chain)]
    expected = ["iptables"] if (table, chain) in IPTABLES_ONLY else ["ipvs"] if (table, chain) in IPVS_ONLY else []
    assert owners == expected


@pytest.mark.parametrize(("table", "chain"), IPTABLES_ONLY + IPVS_ONLY + SHARED + NEVER)
def test_only_kube_proxy_s_chains_are_rewritten_whole(table, chain):
    assert rewritten_chain(table, chain) == ((table, chain) not in NEVER)

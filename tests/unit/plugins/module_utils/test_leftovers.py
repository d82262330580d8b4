"""_leftovers: finding the other kube-proxy mode's chains, rules, ipsets, IPVS servers and device, and removing them."""

from __future__ import annotations

from ansible_collections.rkeops.ipvs.plugins.module_utils import _leftovers as L

# iptables mode's rules as the proxier writes them (pkg/proxy/iptables/proxier.go) next to IPVS mode's
# (pkg/proxy/ipvs/proxier.go), a CNI chain and kubelet's chains: a node switched from iptables to IPVS.
MIXED = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-DROP - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]
:KUBE-SEP-A - [0:0]
:cali-OUTPUT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" -j cali-OUTPUT
-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SERVICES -d 10.43.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
-A KUBE-SERVICES ! -s 10.42.0.0/16 -d 10.43.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" \
-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-SVC-NPX46M4PTMTKRN6Y -j KUBE-SEP-A
-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 192.0.2.10:6443
-A cali-OUTPUT -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
-A INPUT -j KUBE-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP
-A KUBE-SERVICES -d 10.43.0.20/32 -p tcp -m comment --comment "default/empty has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
"""


def test_ipvs_mode_finds_the_iptables_mode_chains_and_the_rules_that_jump_to_them():
    found = L.find("ipvs", MIXED, [], [], {})
    assert found["iptables"]["nat"]["chains"] == ["KUBE-NODEPORTS", "KUBE-SVC-NPX46M4PTMTKRN6Y", "KUBE-SEP-A"]
    comments = [line.split("--comment ")[1][:20] for line in found["iptables"]["nat"]["rules"]]
    assert comments == ['"default/kubernetes:', '"default/kubernetes:', '"kubernetes service ']
    assert found["iptables"]["filter"] == {
        "chains": ["KUBE-SERVICES"],
        "rules": ['-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
    }
    assert found["count"] == 3 + 3 + 1 + 1


def test_iptables_mode_finds_the_ipvs_mode_state():
    found = L.find(
        "iptables",
        MIXED,
        {"KUBE-CLUSTER-IP": ["10.43.0.1,tcp:443"], "KUBE-NODE-PORT-TCP": ["30080"], "cali40all-ipam-pools": []},
        ["TCP 10.43.0.1:443", "TCP 192.0.2.5:30080", "TCP 192.0.2.100:80", "FWM 5"],
        {"kube-ipvs0": ["10.43.0.1"]},
    )
    assert found["iptables"] == {
        "nat": {
            "chains": ["KUBE-NODE-PORT"],
            "rules": [
                "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
                "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
            ],
        }
    }
    assert found["ipsets"] == ["KUBE-CLUSTER-IP", "KUBE-NODE-PORT-TCP"]
    # keepalived's VIP (192.0.2.100:80) and a fwmark service are not kube-proxy's.
    assert found["ipvs_services"] == ["TCP 10.43.0.1:443", "TCP 192.0.2.5:30080"]
    assert found["interfaces"] == ["kube-ipvs0"]


def test_removal_leaves_the_rest_and_a_second_find_is_empty():
    tables = L.parse_save(MIXED)
    for mode in L.MODES:
        found = L.find(mode, MIXED, [], [], {})
        after = L.apply(tables, found["iptables"])
        assert L.find(mode, after, [], [], {})["count"] == 0
        kept = set(L.render_save(after).splitlines())
        assert {"-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000", "-A cali-OUTPUT -j ACCEPT", "-A INPUT -j KUBE-FIREWALL"} <= kept


def test_restore_input_declares_deletes_and_commits_per_table():
    found = L.find("ipvs", MIXED, [], [], {})
    text = L.restore_input(found["iptables"])
    assert text.startswith("*nat\n:KUBE-NODEPORTS - [0:0]\n")
    assert "-D KUBE-SERVICES -d 10.43.0.1/32" in text
    assert text.count("COMMIT") == 2
    assert L.restore_input({}) == ""

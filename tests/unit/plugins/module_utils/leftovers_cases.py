"""What the _leftovers_* tests share: a switched node's rules, the public dumps, and a model of what
`iptables-restore --noflush` does to a node (the oracle restore_input is checked against)."""

from collections import OrderedDict
from pathlib import Path

from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_owners import rewritten_chain
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_save import apply, parse_rule, restore_input

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


# Real rule sets from public GitHub issues (tests/data/iptables-dumps, sources in its README).
DUMPS = sorted((Path(__file__).resolve().parents[3] / "data" / "iptables-dumps").glob("*.rules"))


def restore_noflush(tables, text):
    """{table: {chain: [rule lines]}} after `iptables-restore --noflush` applied `text` to the parsed model, as the
    kernel does it: a chain line creates the chain or flushes it, -A appends to an existing chain, -D deletes the
    first equal rule (fails when there is none), -X fails on a chain that holds rules or that a rule jumps to."""
    state = by_chain(tables)
    chains = None
    for line in text.splitlines():
        if line.startswith("*"):
            chains = state[line[1:]]
        elif line.startswith(":"):
            chains[line[1:].split()[0]] = []
        elif line.startswith("-A "):
            chains[line.split()[1]].append(line)  # KeyError: no such chain, as iptables-restore fails
        elif line.startswith("-D "):
            chains[line.split()[1]].remove("-A " + line[3:])  # ValueError: no such rule
        elif line.startswith("-X "):
            name = line.split()[1]
            assert not chains[name], "-X %s: chain not empty" % name
            assert not [rule for rules in chains.values() for rule in rules if parse_rule(rule).target == name], "-X %s: in use" % name
            del chains[name]
        else:
            assert line == "COMMIT", line
    return state


def by_chain(tables):
    """{table: {chain: [rule lines]}} of a parsed model."""
    state = {name: OrderedDict((chain, []) for chain in table["chains"]) for name, table in tables.items()}
    for name, table in tables.items():
        for rule in table["rules"]:
            state[name][rule.chain].append(rule.line)
    return state


def check_restore(tables, found):
    """The restore input does on a node exactly what apply() models, declares no chain kube-proxy does not own and
    deletes (-D) only in chains it does not rewrite."""
    text = restore_input(found, tables)
    assert restore_noflush(tables, text) == by_chain(apply(tables, found))
    table = None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            assert rewritten_chain(table, line[1:].split()[0]), line
        elif line.startswith("-D "):
            assert not rewritten_chain(table, line.split()[1]), line
    return text

"""_leftovers_find: the other kube-proxy mode's chains, rules, ipsets, IPVS servers and device on a node, and what
removing them leaves."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from leftovers_cases import DUMPS, MIXED, check_restore

from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_find import find
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_owners import MODES, SHARED_CHAINS
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_save import apply, parse_save, render_save


def test_ipvs_mode_finds_the_iptables_mode_chains_and_the_rules_that_jump_to_them():
    found = find("ipvs", MIXED, [], [], {})
    assert found["iptables"]["nat"]["chains"] == ["KUBE-NODEPORTS", "KUBE-SVC-NPX46M4PTMTKRN6Y", "KUBE-SEP-A"]
    comments = [line.split("--comment ")[1][:20] for line in found["iptables"]["nat"]["rules"]]
    assert comments == ['"default/kubernetes:', '"default/kubernetes:', '"kubernetes service ']
    assert found["iptables"]["filter"] == {
        "chains": ["KUBE-SERVICES"],
        "rules": ['-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
    }
    assert found["count"] == 3 + 3 + 1 + 1


def test_iptables_mode_finds_the_ipvs_mode_state():
    found = find(
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
    tables = parse_save(MIXED)
    for mode in MODES:
        found = find(mode, MIXED, [], [], {})
        after = apply(tables, found["iptables"])
        assert find(mode, after, [], [], {})["count"] == 0
        kept = set(render_save(after).splitlines())
        assert {"-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000", "-A cali-OUTPUT -j ACCEPT", "-A INPUT -j KUBE-FIREWALL"} <= kept


# --- The real dumps (tests/data/iptables-dumps, sources in its README) ------------------------------------------

# Names only the other mode's proxier gives its chains (pkg/proxy/{iptables,ipvs}/proxier.go), written out here
# independently of _leftovers_owners.py's tables, so that the tests do not check the module against itself.
OTHER_MODE_CHAIN = {
    "ipvs": re.compile(r"^(KUBE-(SVC|SVL|SEP|EXT|FW|XLB)-[A-Z0-9]+|KUBE-NODEPORTS|KUBE-EXTERNAL-SERVICES|KUBE-PROXY-CANARY)$"),
    "iptables": re.compile(r"^(KUBE-NODE-PORT|KUBE-LOAD-BALANCER|KUBE-SOURCE-RANGES-FIREWALL|KUBE-IPVS-FILTER|KUBE-IPVS-OUT-FILTER)$"),
}
# Other owners: CNI plugins, Docker, kubelet (whose KUBE-FIREWALL is in filter; nat KUBE-FIREWALL is the IPVS
# proxier's, up to 1.24).
FOREIGN = re.compile(r"(cali-|FLANNEL|CNI-|WEAVE|DOCKER|KUBE-MARK-DROP|KUBE-KUBELET-CANARY|flanneld|docker0)")
# What each dump's other-mode leftovers add up to, counted by hand from the dump (chains + rules outside them).
EXPECTED_COUNT = {
    "01-ipvs-nat-filter_kubernetes-105208.rules": ("iptables", 3),  # nat KUBE-FIREWALL, KUBE-LOAD-BALANCER, KUBE-NODE-PORT
    "02-ipvs-1.22-filter-docker_sealer-1527.rules": ("iptables", 2),  # filter KUBE-NODE-PORT + INPUT's jump
    "03-iptables-filter-calico-docker_kubernetes-61005.rules": ("ipvs", 2),  # filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES
    "04-iptables-nat-flannel-docker_flannel-835.rules": ("ipvs", 1 + 8 + 17),  # KUBE-NODEPORTS, 8 KUBE-SEP, 17 KUBE-SVC
    "05-iptables-nat-weave_kubernetes-61944.rules": ("ipvs", 1 + 1 + 3),  # KUBE-NODEPORTS, 1 KUBE-SEP, 3 KUBE-SVC
    "06-ipvs-nat-flannel_kubernetes-116453.rules": ("iptables", 2),  # KUBE-LOAD-BALANCER, KUBE-NODE-PORT
    "07-iptables-nat-calico-flannel_flannel-1608.rules": ("ipvs", 1 + 1 + 7 + 4),  # NODEPORTS, PROXY-CANARY, 7 SEP, 4 SVC
    "08-iptables-nat-docker_calico-2720.rules": ("ipvs", 1 + 7 + 4),
    "09-iptables-nat-docker_kubernetes-36835.rules": ("ipvs", 1 + 4 + 2),
    # mangle and filter KUBE-PROXY-CANARY, filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, and the 3 jumps to them
    "10-iptables-mangle-filter-canary-docker_kilo-128.rules": ("ipvs", 2 + 2 + 3),
}


def dump_lines(tables):
    """Each table's lines, prefixed with the table's name."""
    return {"%s %s" % (name, line) for name, table in tables.items() for line in render_save({name: table}).splitlines()}


def test_every_dump_has_an_expected_count():
    assert sorted(EXPECTED_COUNT) == [path.name for path in DUMPS]
    assert len(DUMPS) >= 5


@pytest.mark.parametrize("path", DUMPS, ids=lambda path: path.name[:2])
def test_a_real_dump_loses_exactly_the_other_modes_chains(path):
    current, expected = EXPECTED_COUNT[path.name]
    tables = parse_save(path.read_text())
    found = find(current, path.read_text(), [], [], {})
    assert found["count"] == expected
    after = apply(tables, found["iptables"])
    # No chain of the other mode is left, and nothing of another owner went.
    assert not [chain for table in after.values() for chain in table["chains"] if OTHER_MODE_CHAIN[current].match(chain)]
    before_lines, after_lines = dump_lines(tables), dump_lines(after)
    assert after_lines <= before_lines
    gone = before_lines - after_lines
    assert all(not FOREIGN.search(line) or "-j KUBE-" in line for line in gone)
    assert not [line for line in gone if line.startswith("filter") and "KUBE-FIREWALL" in line]
    assert find(current, after, [], [], {})["count"] == 0
    # In its own mode, a dump holds no leftovers: nothing would be touched.
    own = "ipvs" if current == "iptables" else "iptables"
    assert find(own, path.read_text(), [], [], {})["count"] == 0


@pytest.mark.parametrize("path", DUMPS, ids=lambda path: path.name[:2])
def test_restore_input_of_a_real_dump_names_only_found_chains(path):
    current, _expected = EXPECTED_COUNT[path.name]
    found = find(current, path.read_text(), [], [], {})
    tables = parse_save(path.read_text())
    text = check_restore(tables, found["iptables"])
    removed = {line.split()[1] for line in text.splitlines() if line.startswith("-X ")}
    assert removed == {chain for table in found["iptables"].values() for chain in table["chains"]}


# --- Properties ---------------------------------------------------------------------------------------------------

KUBE_IPTABLES = st.sampled_from(["KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-CANARY"]) | st.from_regex(
    r"\AKUBE-(SVC|SEP|EXT|FW|XLB|SVL)-[A-Z2-7]{16}\Z"
)
KUBE_IPVS = st.sampled_from(["KUBE-NODE-PORT", "KUBE-LOAD-BALANCER", "KUBE-SOURCE-RANGES-FIREWALL", "KUBE-IPVS-FILTER"])
FOREIGN_CHAINS = st.sampled_from(["cali-FORWARD", "FLANNEL-POSTRTG", "CNI-HOSTPORT-DNAT", "WEAVE", "DOCKER", "DOCKER-USER"]) | st.from_regex(
    r"\A(cali-fw-cali|CNI-DN-|KUBE-ROUTER-)[a-f0-9]{8}\Z"
)
KUBELET = st.sampled_from(["KUBE-FIREWALL", "KUBE-MARK-DROP", "KUBE-KUBELET-CANARY"])
# nat KUBE-SERVICES, KUBE-POSTROUTING, filter KUBE-FORWARD...: shared, rewritten whole when they lose rules.
SHARED = st.sampled_from(sorted(SHARED_CHAINS["nat"] | SHARED_CHAINS["filter"]))


@st.composite
def node(draw):
    """A nat / filter model with chains of both modes, other owners and kubelet, jumping to each other at random."""
    tables = {}
    for table in ("nat", "filter"):
        chains = ["INPUT", "FORWARD", "OUTPUT"] + sorted(set(draw(st.lists(KUBE_IPTABLES | KUBE_IPVS | FOREIGN_CHAINS | KUBELET | SHARED, max_size=12))))
        lines = ["*%s" % table] + [":%s %s [0:0]" % (c, "ACCEPT" if c.isupper() and "-" not in c else "-") for c in chains]
        for _rule in range(draw(st.integers(0, 25))):
            source, target = draw(st.sampled_from(chains)), draw(st.sampled_from(chains + ["ACCEPT", "RETURN"]))
            if target in ("INPUT", "FORWARD", "OUTPUT"):
                continue
            comment = draw(st.sampled_from(["", ' -m comment --comment "default/kubernetes:https cluster IP"', ' -m comment --comment "cali:x"']))
            lines.append("-A %s -d 10.43.0.%d/32%s -j %s" % (source, draw(st.integers(1, 9)), comment, target))
        tables[table] = "\n".join(lines + ["COMMIT"])
    return "\n".join(tables.values()) + "\n"


@settings(max_examples=100, deadline=None)
@given(node(), st.sampled_from(MODES))
def test_property_foreign_chains_stay_and_a_second_find_is_empty(text, mode):
    tables = parse_save(text)
    found = find(mode, text, [], [], {})
    removed = {name: set(part["chains"]) for name, part in found["iptables"].items()}
    for chains in removed.values():
        assert not {chain for chain in chains if re.match(r"(cali-|FLANNEL|CNI-|WEAVE|DOCKER|KUBE-ROUTER-)", chain)}
        assert not chains & {"KUBE-MARK-DROP", "KUBE-KUBELET-CANARY", "INPUT", "FORWARD", "OUTPUT"}
    assert "KUBE-FIREWALL" not in removed.get("filter", ())
    after = apply(tables, found["iptables"])
    check_restore(tables, found["iptables"])
    # Every rule left jumps to a chain that is still there, and finding again finds nothing.
    for name, table in after.items():
        for rule in table["rules"]:
            assert rule.target not in removed.get(name, ())
            assert rule.chain in table["chains"]
    assert find(mode, after, [], [], {})["count"] == 0
    # Rules of other owners' chains all stay, whatever they jump to in their own table.
    kept = dump_lines(after)
    for line in dump_lines(tables):
        name, words = line.split()[0], line.split()[1:]
        if words[0] == "-A" and words[1] not in removed.get(name, ()) and words[-1] not in removed.get(name, ()):
            if words[1] not in SHARED_CHAINS.get("nat", ()) | SHARED_CHAINS.get("filter", ()):
                assert line in kept

"""_leftovers: finding the other kube-proxy mode's chains, rules, ipsets, IPVS servers and device, and removing them."""

from __future__ import annotations

from collections import OrderedDict

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
            assert not [rule for rules in chains.values() for rule in rules if L.parse_rule(rule).target == name], "-X %s: in use" % name
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
    text = L.restore_input(found, tables)
    assert restore_noflush(tables, text) == by_chain(L.apply(tables, found))
    table = None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            assert L.rewritten_chain(table, line[1:].split()[0]), line
        elif line.startswith("-D "):
            assert not L.rewritten_chain(table, line.split()[1]), line
    return text


def test_restore_input_rewrites_shared_chains_and_deletes_elsewhere():
    tables = L.parse_save(MIXED)
    found = L.find("ipvs", MIXED, [], [], {})
    text = check_restore(tables, found["iptables"])
    nat = text[: text.index("COMMIT")].splitlines()
    # nat KUBE-SERVICES is declared (flushed) and its IPVS-mode rules appended again, in order, verbatim; the
    # iptables-mode chains are flushed and deleted; PREROUTING is not touched (it keeps its rule).
    assert nat == [
        "*nat",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]",
        ":KUBE-SEP-A - [0:0]",
        "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
        "-X KUBE-NODEPORTS",
        "-X KUBE-SVC-NPX46M4PTMTKRN6Y",
        "-X KUBE-SEP-A",
    ]
    # filter KUBE-SERVICES (iptables mode's own) goes whole; OUTPUT's jump to it is deleted, nothing else there.
    assert '-D OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in text
    assert text.count("COMMIT") == 2
    assert L.restore_input({}, tables) == ""


def test_restore_input_deletes_in_built_in_and_foreign_chains():
    cali = '-A OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" -j cali-OUTPUT'
    text = MIXED.replace(cali, "-A OUTPUT -j KUBE-NODEPORTS\n-A cali-OUTPUT -j KUBE-SVC-NPX46M4PTMTKRN6Y")
    tables = L.parse_save(text)
    found = L.find("ipvs", text, [], [], {})
    restore = check_restore(tables, found["iptables"])
    assert "-D OUTPUT -j KUBE-NODEPORTS" in restore and "-D cali-OUTPUT -j KUBE-SVC-NPX46M4PTMTKRN6Y" in restore
    assert ":OUTPUT" not in restore and ":cali-OUTPUT" not in restore


def test_restore_input_removes_duplicates_as_often_as_listed():
    text = MIXED.replace("-A KUBE-SERVICES -m set", "-A KUBE-SERVICES -j KUBE-NODEPORTS\n-A KUBE-SERVICES -m set")
    tables = L.parse_save(text)
    check_restore(tables, L.find("ipvs", text, [], [], {})["iptables"])


# --- The real dumps (tests/data/iptables-dumps, sources in its README) ------------------------------------------

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DUMPS = sorted((Path(__file__).resolve().parents[3] / "data" / "iptables-dumps").glob("*.rules"))
# Names only the other mode's proxier gives its chains (pkg/proxy/{iptables,ipvs}/proxier.go), written out here
# independently of _leftovers.py's tables, so that the tests do not check the module against itself.
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
    return {"%s %s" % (name, line) for name, table in tables.items() for line in L.render_save({name: table}).splitlines()}


def test_every_dump_has_an_expected_count():
    assert sorted(EXPECTED_COUNT) == [path.name for path in DUMPS]
    assert len(DUMPS) >= 5


@pytest.mark.parametrize("path", DUMPS, ids=lambda path: path.name[:2])
def test_a_real_dump_loses_exactly_the_other_modes_chains(path):
    current, expected = EXPECTED_COUNT[path.name]
    tables = L.parse_save(path.read_text())
    found = L.find(current, path.read_text(), [], [], {})
    assert found["count"] == expected
    after = L.apply(tables, found["iptables"])
    # No chain of the other mode is left, and nothing of another owner went.
    assert not [chain for table in after.values() for chain in table["chains"] if OTHER_MODE_CHAIN[current].match(chain)]
    before_lines, after_lines = dump_lines(tables), dump_lines(after)
    assert after_lines <= before_lines
    gone = before_lines - after_lines
    assert all(not FOREIGN.search(line) or "-j KUBE-" in line for line in gone)
    assert not [line for line in gone if line.startswith("filter") and "KUBE-FIREWALL" in line]
    assert L.find(current, after, [], [], {})["count"] == 0
    # In its own mode, a dump holds no leftovers: nothing would be touched.
    own = "ipvs" if current == "iptables" else "iptables"
    assert L.find(own, path.read_text(), [], [], {})["count"] == 0


@pytest.mark.parametrize("path", DUMPS, ids=lambda path: path.name[:2])
def test_restore_input_of_a_real_dump_names_only_found_chains(path):
    current, _expected = EXPECTED_COUNT[path.name]
    found = L.find(current, path.read_text(), [], [], {})
    tables = L.parse_save(path.read_text())
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
SHARED = st.sampled_from(sorted(L.SHARED_CHAINS["nat"] | L.SHARED_CHAINS["filter"]))


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
@given(node(), st.sampled_from(L.MODES))
def test_property_foreign_chains_stay_and_a_second_find_is_empty(text, mode):
    tables = L.parse_save(text)
    found = L.find(mode, text, [], [], {})
    removed = {name: set(part["chains"]) for name, part in found["iptables"].items()}
    for chains in removed.values():
        assert not {chain for chain in chains if re.match(r"(cali-|FLANNEL|CNI-|WEAVE|DOCKER|KUBE-ROUTER-)", chain)}
        assert not chains & {"KUBE-MARK-DROP", "KUBE-KUBELET-CANARY", "INPUT", "FORWARD", "OUTPUT"}
    assert "KUBE-FIREWALL" not in removed.get("filter", ())
    after = L.apply(tables, found["iptables"])
    check_restore(tables, found["iptables"])
    # Every rule left jumps to a chain that is still there, and finding again finds nothing.
    for name, table in after.items():
        for rule in table["rules"]:
            assert rule.target not in removed.get(name, ())
            assert rule.chain in table["chains"]
    assert L.find(mode, after, [], [], {})["count"] == 0
    # Rules of other owners' chains all stay, whatever they jump to in their own table.
    kept = dump_lines(after)
    for line in dump_lines(tables):
        name, words = line.split()[0], line.split()[1:]
        if words[0] == "-A" and words[1] not in removed.get(name, ()) and words[-1] not in removed.get(name, ()):
            if words[1] not in L.SHARED_CHAINS.get("nat", ()) | L.SHARED_CHAINS.get("filter", ()):
                assert line in kept


def test_parse_rule_reads_the_target_and_sets_outside_comments():
    rule = L.parse_rule('-A KUBE-SERVICES -m comment --comment "a \\"-j KUBE-SVC-X\\" --match-set Y" -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT')
    assert (rule.chain, rule.target, rule.sets) == ("KUBE-SERVICES", "ACCEPT", ["KUBE-CLUSTER-IP"])
    assert L.parse_rule("[5:300] -A FORWARD -g cali-FORWARD").target == "cali-FORWARD"
    assert L.parse_rule("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000").target == "MARK"
    assert L.parse_rule("-A INPUT -p tcp").target == ""


def test_parse_rule_quick_reading_defers_where_quotes_or_long_forms_could_mislead():
    # A comment that holds "-j X" before the real target: the last -j outside the quotes counts.
    assert L.parse_rule('-A C -m comment --comment "x -j WRONG" -j RIGHT').target == "RIGHT"
    # The target's own options quote something that holds " -j ": the quick reading gives way to the regular expressions.
    assert L._fast_target('-j LOG --log-prefix "a -j b"') is None
    assert L.parse_rule('-A C -j LOG --log-prefix "a -j b"').target == "LOG"
    assert L.parse_rule("-A C --jump ACCEPT").target == "ACCEPT"
    assert L.parse_rule("-A C -p tcp -g KUBE-X").target == "KUBE-X"


def _dump_rule_specs():
    for path in DUMPS:
        for line in path.read_text().splitlines():
            if line.startswith("-A ") or (line.startswith("[") and "] -A " in line):
                parts = line.split("-A ", 1)[1].split(None, 1)
                yield parts[1] if len(parts) > 1 else ""


def test_parse_rule_quick_reading_agrees_with_the_regular_expressions_on_every_public_dump_line():
    specs = list(_dump_rule_specs())
    assert len(specs) > 60
    quick = [spec for spec in specs if L._fast_target(spec) is not None]
    # Most real lines take the quick path, and on each the two readings agree.
    assert len(quick) > len(specs) * 0.9
    assert [L._fast_target(spec) for spec in quick] == [L._regex_reading(spec)[0] for spec in quick]


_MATCH_WORD = st.sampled_from(["-m", "comment", "-p", "tcp", "-d", "10.43.0.1/32", "!", "--dport", "443", "-m", "mark"])
_COMMENT_WORD = st.sampled_from(["-j", "-g", "--jump", "KUBE-SVC-A", "x", '\\"', "--match-set", "y"])


@st.composite
def _rule_spec(draw):
    """A rule as iptables-save prints it: matches, maybe a quoted comment (holding anything, escaped quotes too),
    then maybe the target (-j or -g, short form) and the target's options."""
    words = draw(st.lists(_MATCH_WORD, max_size=6))
    if draw(st.booleans()):
        words += ["-m", "comment", "--comment", '"%s"' % " ".join(draw(st.lists(_COMMENT_WORD, max_size=5)))]
    target = draw(st.sampled_from(["", "ACCEPT", "KUBE-SVC-ABC", "DNAT", "LOG"]))
    if target:
        words += [draw(st.sampled_from(["-j", "-g"])), target]
        words += draw(st.sampled_from([[], ["--to-destination", "10.42.0.2:80"], ["--log-prefix", '"a -j b"']]))
    return " ".join(words), target


@settings(max_examples=300, deadline=None)
@given(_rule_spec())
def test_property_parse_rule_reads_the_target_the_quick_way_or_the_regular_expressions_way(case):
    spec, target = case
    assert L.parse_rule("-A C " + spec).target == target, spec
    quick = L._fast_target(spec)
    assert quick in (None, target), spec

# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables-save text as kube_proxy_leftovers reads it, and the iptables-restore input that removes a finding
(private to the collection).

The model: {table: {"chains": OrderedDict(name -> policy), "rules": [Rule...]}}, read from iptables-save and
written back as iptables-save prints it. A finding's iptables part ({table: {"chains": [...], "rules": [lines]}},
_leftovers_find) is removed by one `iptables-restore --noflush` input per backend.

Python 3.6 compatible (runs on the nodes): no f-strings, no dataclasses.
"""

import re
from collections import Counter, OrderedDict

from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_owners import rewritten_chain

# The order restore_input writes the tables in (a table not listed here comes after these).
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
# are blanked out: a node with 1,000 services has thousands of rules, and shlex.split on each would take most of the
# module's time; this takes a few hundredths of a second.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_TARGET = re.compile(r"(?:^|\s)(?:-j|--jump|-g|--goto) (\S+)")
_MATCH_SET = re.compile(r"--match-set (\S+)")


def _fast_target(spec):
    """The target of a rule without regular expressions, or None when the quick reading cannot be trusted.

    iptables-save prints the target last (`-j TARGET [its options]`), after every match and comment. So the last ` -j `
    or ` -g ` of the line is the target unless a quote follows it (it would then be inside a quoted string, or the
    target's options quote something), or the long forms appear. The regular expressions on the quote-blanked line
    (parse_rule) decide those lines; this spares them the thousands of plain ones, halving the time a node's rules
    take to parse.
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


# --- Removing ----------------------------------------------------------------------------------------------------


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


# --- iptables-restore's options ----------------------------------------------------------------------------------

# The header names the program as it was called: iptables-save, or iptables-nft-save / iptables-legacy-save, the
# names the module prefers when both backends are installed (Debian 12: "# Generated by iptables-nft-save v1.8.9
# (nf_tables) on ...").
_SAVE_VERSION = re.compile(r"^# Generated by (?:ip6?tables|xtables)(?:-nft|-legacy)?-save v(\d+)\.(\d+)\.(\d+)", re.M)


def wait_args(save_text):
    """`-w 5` when the iptables that printed save_text has iptables-restore --wait (1.6.2 and later), as kube-proxy
    does (pkg/util/iptables/iptables.go, WaitRestoreMinVersion): kube-proxy itself holds the xtables lock while it
    syncs, and a restore without --wait fails instead of waiting its turn."""
    match = _SAVE_VERSION.search(save_text)
    if match and tuple(int(part) for part in match.groups()) >= (1, 6, 2):
        return ["-w", "5"]
    return []

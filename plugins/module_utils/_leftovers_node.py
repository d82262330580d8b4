# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a node for kube_proxy_leftovers and kube_proxy_info: its iptables backends, ipsets, IPVS virtual servers
and kube-ipvs0, and the finding in one go (gather). Private to the collection.

`module` is an AnsibleModule, or anything with its get_bin_path / run_command / fail_json. The parsers of ipset's
and ipvsadm's output are plain functions over text.

Python 3.6 compatible (runs on the nodes): no f-strings, no dataclasses.
"""

import os
from collections import OrderedDict

from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_find import count, empty, find, sets_still_used
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_owners import IPVS_DEVICE
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_save import diff_lines, parse_save, wait_args
from ansible_collections.rkeops.ipvs.plugins.module_utils._node_commands import run

# --- ipvsadm and ipset ----------------------------------------------------------------------------------------


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


# --- Reading the node ----------------------------------------------------------------------------------------------

# The commands of each backend: the suffixed names Debian's and RHEL 8's iptables packages install, then the plain
# names, whose backend `iptables --version` tells ("v1.8.9 (nf_tables)" / "(legacy)"; 1.4.x is legacy only).
BACKENDS = ("legacy", "nft")
# kubelet's chains are KUBE-* too; they do not show that kube-proxy wrote to a backend.
_NOT_KUBE_PROXY = ("KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT", "KUBE-FIREWALL", "KUBE-MARK-DROP")


def backend_commands(module):
    """{backend: (save, restore)} for the backends this node has."""
    found = {}
    for backend in BACKENDS:
        save = module.get_bin_path("iptables-%s-save" % backend)
        restore = module.get_bin_path("iptables-%s-restore" % backend)
        if save and restore:
            found[backend] = (save, restore)
    if not found:
        save = module.get_bin_path("iptables-save")
        restore = module.get_bin_path("iptables-restore")
        iptables = module.get_bin_path("iptables")
        if save and restore:
            version = module.run_command([iptables, "--version"])[1] if iptables else ""
            found["nft" if "nf_tables" in version else "legacy"] = (save, restore)
    return found


def holds_kube_proxy(tables):
    """Whether kube-proxy has written to a backend: a parsed model with a KUBE-* chain that is not kubelet's."""
    return any(chain.startswith("KUBE-") and chain not in _NOT_KUBE_PROXY for table in tables.values() for chain in table["chains"])


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
    ipset = module.get_bin_path("ipset")
    if ipset:
        sets = parse_ipset_save(run(module, [ipset, "save"], what="ipset save"))
    ipvsadm = module.get_bin_path("ipvsadm")
    if ipvsadm:
        services = parse_ipvsadm_save(run(module, [ipvsadm, "-S", "-n"], what="ipvsadm -S -n"))
    elif ipvs_servers_in_kernel():
        module.fail_json(
            msg="The kernel holds IPVS virtual servers but ipvsadm is not installed: install ipvsadm (the rkeops.ipvs.prereqs role does), then run again"
        )
    if os.path.exists("/sys/class/net/%s" % IPVS_DEVICE):
        ip = module.get_bin_path("ip", required=True)
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
            used |= sets_still_used(tables, found["backends"][name])
        found["ipsets"] = [item for item in part["ipsets"] if item not in used]
        found["ipvs_services"] = part["ipvs_services"]
        found["interfaces"] = part["interfaces"]
    found["count"] = count(found)
    return restore_args, saved, found, diff_before

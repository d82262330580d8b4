# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading kube-proxy's own account of its proxy mode (private to the collection).

Plain functions over text (docker logs, ipvsadm -Ln), tested without a node.
"""

from __future__ import annotations

import ipaddress
import re

# What kube-proxy prints, in the wordings of the Kubernetes versions RKE ships:
#   up to 1.20 (klog):        "Using ipvs Proxier."  /  "Can't use ipvs proxier, trying iptables proxier"
#                             followed by "Using iptables Proxier."
#   1.21 to 1.25 (structured): "Using ipvs Proxier"  /  "Can't use the IPVS proxier" err="..." then "Using iptables Proxier"
#   1.26 and later:           "Error running ProxyServer" err="can't use the IPVS proxier: ..." and kube-proxy exits
MODE_LINES = (
    ("ipvs", re.compile(r"Using ipvs Proxier")),
    ("iptables", re.compile(r"Using iptables Proxier")),
    ("refused", re.compile(r"Error running ProxyServer.*can't use the IPVS proxier", re.IGNORECASE)),
)
FALLBACK_LINES = (
    re.compile(r"Can't use ipvs proxier, trying iptables proxier"),
    re.compile(r"Can't use the IPVS proxier", re.IGNORECASE),
    re.compile(r"IPVS proxier will not be used"),
)
_MISSING_MODULES = re.compile(r"following required kernel modules are not loaded: \[([^\]]*)\]")
_IPSET = re.compile(r"((?:error getting )?ipset version.*)$", re.IGNORECASE)
_VIRTUAL = re.compile(r"^(TCP|UDP|SCTP)\s+(\S+)\s+(\S+)")


def read_log(text: str) -> dict:
    """The mode kube-proxy settled on last (logs add up over restarts), the fallback lines and their reasons."""
    mode, mode_line = "none", ""
    fallbacks = []
    for line in text.splitlines():
        for name, pattern in MODE_LINES:
            if pattern.search(line):
                mode, mode_line = name, line.strip()
        if any(pattern.search(line) for pattern in FALLBACK_LINES):
            fallbacks.append(line.strip())
    missing: list[str] = []
    ipset = ""
    for line in fallbacks:
        found = _MISSING_MODULES.search(line)
        if found:
            missing = found.group(1).split()
        ipset_problem = _IPSET.search(line)
        if ipset_problem:
            ipset = ipset_problem.group(1).strip().rstrip('"').replace('\\"', '"')
    return {"mode": mode, "mode_line": mode_line, "fallback_lines": fallbacks[-5:], "missing_modules": missing, "ipset_problem": ipset}


def virtual_servers(ipvsadm_output: str) -> list[str]:
    """'TCP 10.43.0.1:443 rr' for each virtual server of `ipvsadm -Ln`."""
    servers = []
    for line in ipvsadm_output.splitlines():
        found = _VIRTUAL.match(line.strip())
        if found:
            servers.append(" ".join(found.groups()))
    return servers


def kubernetes_service(service_cluster_ip_range: str, port: int) -> str:
    """The `kubernetes` service's address: the first address of the service range (10.43.0.1:443 by default)."""
    network = ipaddress.ip_network(service_cluster_ip_range.split(",", maxsplit=1)[0].strip(), strict=False)
    first = network.network_address + 1
    return ("[%s]:%d" if first.version == 6 else "%s:%d") % (first, port)


def problems(expected: str, facts: dict) -> list[str]:
    """What stands between the node and kube-proxy in the expected mode, in words for the operator."""
    found = []
    container = facts["container"]
    log = facts["log"]
    if not container["exists"]:
        return ["no kube-proxy container (has rke up run on this node?)"]
    if not container["running"]:
        found.append("the kube-proxy container is not running (status %s, %d restarts)" % (container["status"], container["restart_count"]))
    if log["mode"] == "refused":
        found.append("kube-proxy refused to start in IPVS mode")
    elif log["mode"] != expected:
        if log["mode"] == "iptables" and expected == "ipvs":
            found.append("kube-proxy fell back to iptables")
        elif log["mode"] == "none":
            found.append("kube-proxy's log does not say which proxier it uses yet")
        else:
            found.append("kube-proxy's log says it uses the %s proxier" % log["mode"])
    if expected == "ipvs":
        if log["missing_modules"]:
            found.append("kernel modules not loaded: %s" % ", ".join(log["missing_modules"]))
        if log["ipset_problem"]:
            found.append("ipset: %s" % log["ipset_problem"])
    if facts["proxy_mode"] != expected:
        answer = facts["proxy_mode"] if facts["proxy_mode"] is not None else "no answer (%s)" % facts["proxy_mode_error"]
        found.append("%s answers %s" % (facts["proxy_mode_url"], answer))
    if expected == "ipvs":
        if not facts["kube_ipvs0"]:
            found.append("no kube-ipvs0 interface")
        if not facts["service_listed"]:
            found.append("ipvsadm -Ln does not list the kubernetes service %s" % facts["kubernetes_service"])
    return found

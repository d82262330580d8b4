# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kube_proxy_info's verdict: what stands between a node and kube-proxy in the expected mode, in words for the
operator (private to the collection).

Plain functions over the facts kube_proxy_info gathered (its container, its log read by _kube_proxy_log, /proxyMode,
kube-ipvs0, ipvsadm, the data path, the other mode's leftovers).
Runs on the nodes: Python 3.6 syntax at most (no ``X | None``, no ``list[str]`` at run time, no dataclasses).
"""

from typing import Dict, List


def _log_reasons(log: Dict[str, object]) -> List[str]:
    found = []
    if log["missing_modules"]:
        found.append("kernel modules not loaded: %s" % ", ".join(log["missing_modules"]))
    if log["ipset_problem"]:
        found.append("ipset: %s" % log["ipset_problem"])
    found.extend(log.get("reasons") or [])
    return found


def problems(expected: str, facts: Dict[str, object]) -> List[str]:
    """What stands between the node and kube-proxy in the expected mode, in words for the operator.

    The mode is what /proxyMode answers; only when it gives no answer (kube-proxy down, or its metrics server off)
    does the log decide. The log gives the reasons either way. Then, for IPVS, kube-ipvs0 and the kubernetes service.
    """
    container = facts["container"]
    log = facts["log"]
    if not container["exists"]:
        return ["no kube-proxy container (has rke up run on this node?)"]
    found = []
    if not container["running"]:
        found.append("the kube-proxy container is not running (status %s, %d restarts)" % (container["status"], container["restart_count"]))
    answered = facts["proxy_mode"]
    mode = answered if answered is not None else log["mode"]
    reasons = _log_reasons(log) if expected == "ipvs" else []
    if mode != expected:
        if answered is None and mode == "refused":
            found.append("kube-proxy refused IPVS mode and exits (Kubernetes 1.26 and later do not fall back to iptables)")
        elif mode == "iptables" and expected == "ipvs" and (log["fallback_lines"] or reasons):
            found.append("kube-proxy fell back to iptables")
        elif mode == "none" and not log.get("start_lines"):
            found.append("kube-proxy has logged nothing since its start (or those lines were rotated away)")
        elif mode == "none":
            found.append("kube-proxy's log since its start does not say which proxier it uses (not yet, or rotated away)")
        elif answered is None:
            found.append("kube-proxy's log says it uses the %s proxier" % mode)
        else:
            found.append("kube-proxy runs in %s mode" % mode)
        found.extend(reasons)
    if answered is None and facts.get("proxy_mode_url"):
        found.append("%s gives no answer (%s)" % (facts["proxy_mode_url"], facts["proxy_mode_error"]))
    elif answered is not None and answered != expected:
        found.append("%s answers %s" % (facts["proxy_mode_url"], answered))
    # A lead when nothing above says why.
    if found and not (mode != expected and reasons) and log.get("recent_errors"):
        found.append("kube-proxy's last error: %s" % log["recent_errors"][-1])
    if expected == "ipvs":
        if not facts["kube_ipvs0"]:
            found.append("no kube-ipvs0 interface")
        if not facts["service_listed"]:
            found.append("ipvsadm -Ln does not list the kubernetes service %s" % facts["kubernetes_service"])
    return found


# --- The data path and the other mode's leftovers ------------------------------------------------------------------


def data_path_problems(data_path: Dict[str, object]) -> List[str]:
    """No answer from the kubernetes service, in words naming the address."""
    if not data_path.get("checked") or data_path.get("answered"):
        return []
    return ["the kubernetes service %s did not answer from this node (%s)" % (data_path["address"], data_path.get("error") or "no reason given")]


def leftovers_summary(found: Dict[str, object]) -> str:
    """'filter: 3 rules; nat: 2 chains, 1 rule; 16 ipsets' from a kube_proxy_leftovers finding."""

    def items(number: int, word: str) -> str:
        return "%d %s%s" % (number, word, "" if number == 1 else "s")

    parts = []
    for table in sorted(found.get("iptables") or {}):
        content = found["iptables"][table]
        what = [items(len(content.get(key) or []), key[:-1]) for key in ("chains", "rules") if content.get(key)]
        if what:
            parts.append("%s: %s" % (table, ", ".join(what)))
    for key, word in (("ipsets", "ipset"), ("ipvs_services", "IPVS virtual server"), ("interfaces", "interface")):
        if found.get(key):
            parts.append("%s (%s)" % (items(len(found[key]), word), ", ".join(found[key][:3]) + (", ..." if len(found[key]) > 3 else "")))
    return "; ".join(parts)


def leftover_problems(leftovers: Dict[str, object], policy: str) -> List[str]:
    """The other mode's leftovers as a problem (policy 'problem'), or none ('report', 'skip')."""
    if policy != "problem" or not leftovers.get("checked"):
        if policy == "problem" and leftovers.get("error"):
            return ["the leftovers of the other proxy mode could not be read: %s" % leftovers["error"]]
        return []
    if not leftovers.get("count"):
        return []
    return [
        "%d leftovers of %s mode (%s); the module rkeops.ipvs.kube_proxy_leftovers removes them"
        % (leftovers["count"], leftovers["mode"], leftovers_summary(leftovers.get("found") or {}))
    ]

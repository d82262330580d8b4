# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of ``rkeops.ipvs.cluster_kubeproxy`` turned into a request: which kube-proxy flags to set and remove.

Private to the collection: plain functions, testable without Ansible. Every value is written as the text
RKE hands to kube-proxy (``--flag=value``); option values that cannot work raise RequestError naming the option.
"""

import ipaddress
import re
from collections import OrderedDict

# Schedulers of the Linux IPVS implementation; each is the kernel module ip_vs_<name>.
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")
PROXY_MODES = ("ipvs", "iptables")
DURATION_OPTIONS = (
    ("ipvs_tcp_timeout", "ipvs-tcp-timeout"),
    ("ipvs_tcpfin_timeout", "ipvs-tcpfin-timeout"),
    ("ipvs_udp_timeout", "ipvs-udp-timeout"),
    ("ipvs_sync_period", "ipvs-sync-period"),
    ("ipvs_min_sync_period", "ipvs-min-sync-period"),
)
IPVS_OPTIONS = ("ipvs_scheduler", "ipvs_strict_arp", "ipvs_exclude_cidrs") + tuple(o for o, f in DURATION_OPTIONS)
_DURATION_RE = re.compile(r"^(\d+(\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1e3, "\u00b5s": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


class RequestError(ValueError):
    """An option value that cannot work; the message names the option."""


def parse_duration(option: str, value) -> tuple:
    """Validate a Go duration (``900s``, ``1h30m``); a bare number means seconds. Returns (text, ns)."""
    text = str(value).strip()
    if re.match(r"^\d+$", text):
        text += "s"
    if text.startswith("-"):
        raise RequestError("%s=%s: must not be negative (a Go duration such as 900s or 15m)" % (option, value))
    rest, total = text, 0.0
    if text == "0":
        return text, 0.0
    while rest:
        match = _DURATION_RE.match(rest)
        if not match:
            raise RequestError("%s=%s: not a Go duration; write e.g. 900s, 15m or 1h30m" % (option, value))
        total += float(match.group(1)) * _UNIT_NS[match.group(3)]
        rest = rest[match.end() :]
    return text, total


def flag_text(value) -> str:
    """How a value reaches kube-proxy: booleans as true/false, everything else as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_cidrs(cidrs: list) -> None:
    for cidr in cidrs:
        try:
            if "/" not in str(cidr):
                raise ValueError("no prefix length")
            ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            raise RequestError("ipvs_exclude_cidrs: %r is not a CIDR; write e.g. 10.0.0.0/8 or fd00::/8" % (cidr,)) from None


def _durations(params: dict) -> dict:
    durations = {}
    for option, _flag in DURATION_OPTIONS:
        if params.get(option) is not None:
            durations[option] = parse_duration(option, params[option])
    if "ipvs_sync_period" in durations and durations["ipvs_sync_period"][1] <= 0:
        raise RequestError("ipvs_sync_period must be greater than 0")
    if "ipvs_sync_period" in durations and "ipvs_min_sync_period" in durations:
        if durations["ipvs_min_sync_period"][1] > durations["ipvs_sync_period"][1]:
            raise RequestError("ipvs_min_sync_period must not be longer than ipvs_sync_period")
    return durations


def _check_extra_args(extra: dict) -> None:
    for key, value in extra.items():
        if not isinstance(key, str) or not key.strip() or key.startswith("-") or "=" in key:
            raise RequestError("extra_args: %r is not a kube-proxy flag name; write it without dashes, e.g. masquerade-all" % (key,))
        if isinstance(value, (dict, list)):
            raise RequestError("extra_args.%s: RKE passes flags as text; give a string, number or boolean" % key)


def build_request(params: dict) -> dict:
    """Turn module parameters into the set of flags to set and remove. Raises RequestError."""
    state = params.get("state") or "present"
    mode = params.get("proxy_mode") or "ipvs"
    set_args = OrderedDict()
    remove = set()
    given_ipvs = [name for name in IPVS_OPTIONS if params.get(name) not in (None, [])]
    if state == "present" and mode != "ipvs" and given_ipvs:
        raise RequestError("%s only apply to proxy_mode=ipvs (proxy_mode is %s)" % (", ".join(given_ipvs), mode))

    if params.get("ipvs_scheduler") is not None and params["ipvs_scheduler"] not in SCHEDULERS:
        raise RequestError("ipvs_scheduler=%s: unknown; use one of %s" % (params["ipvs_scheduler"], ", ".join(SCHEDULERS)))
    cidrs = params.get("ipvs_exclude_cidrs") or []
    _check_cidrs(cidrs)
    durations = _durations(params)
    extra = params.get("extra_args") or {}
    _check_extra_args(extra)

    if state == "present":
        set_args["proxy-mode"] = mode
        if params.get("ipvs_scheduler") is not None:
            set_args["ipvs-scheduler"] = params["ipvs_scheduler"]
        if params.get("ipvs_strict_arp") is not None:
            set_args["ipvs-strict-arp"] = flag_text(params["ipvs_strict_arp"])
        if cidrs:
            set_args["ipvs-exclude-cidrs"] = ",".join(str(c) for c in cidrs)
        for option, flag in DURATION_OPTIONS:
            if option in durations:
                set_args[flag] = durations[option][0]
        if params.get("masquerade_all") is not None:
            set_args["masquerade-all"] = flag_text(params["masquerade_all"])
        for key, value in extra.items():
            if value is None:
                set_args.pop(key, None)
                remove.add(key)
            else:
                set_args[key] = flag_text(value)
                remove.discard(key)
    else:
        remove.add("proxy-mode")
        if params.get("masquerade_all") is not None:
            remove.add("masquerade-all")
        remove.update(extra)

    binds = [str(b) for b in (params.get("extra_binds") or [])]
    windows = params.get("windows_proxy_mode", "kernelspace")
    return {
        "state": state,
        "proxy_mode": mode if state == "present" else None,
        "set_args": set_args,
        "remove_args": remove,
        # With proxy_mode iptables or state absent the ipvs-* flags mean nothing: drop them.
        "remove_ipvs_flags": state == "absent" or mode != "ipvs",
        "add_binds": binds if state == "present" else [],
        "remove_binds": binds if state == "absent" else [],
        "remove_lib_modules_binds": bool(params.get("remove_lib_modules_binds")),
        "fix_yaml11_booleans": bool(params.get("fix_yaml11_booleans")),
        "windows_proxy_mode": windows if windows not in ("", None) else None,
    }

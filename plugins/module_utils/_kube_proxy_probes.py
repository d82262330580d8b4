# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where kube_proxy_info asks kube-proxy and IPVS (private to the collection): the /proxyMode URL from kube-proxy's
metrics-bind-address, the virtual servers `ipvsadm -Ln` lists, and the address of the `kubernetes` service.

Plain functions over text, tested without a node.
Runs on the nodes: Python 3.6 syntax at most (no ``X | None``, no ``list[str]`` at run time, no dataclasses).
"""

import ipaddress
import re
from typing import List, Optional, Tuple

_VIRTUAL = re.compile(r"^(TCP|UDP|SCTP)\s+(\S+)\s+(\S+)")


def metrics_url(address: Optional[str]) -> Optional[str]:
    """kube-proxy's /proxyMode URL on this node from its metrics-bind-address, or None when that is empty (off).

    An unspecified address (0.0.0.0, ::, or none before the port) listens on every address: loopback is asked.
    A host without a port gets kube-proxy's default port, 10249. Raises ValueError for anything else.
    """
    if address is None or not address.strip():
        return None
    address = address.strip()
    found = re.match(r"^\[([0-9A-Fa-f:.]*)\](?::(\d+))?$", address) or re.match(r"^([^:\[\]]*)(?::(\d+))?$", address)
    if not found and address.count(":") > 1:
        found = re.match(r"^([0-9A-Fa-f:.]+)()$", address)  # a bare IPv6 address
    if not found:
        raise ValueError("%r is not host:port" % address)
    host, port = found.group(1), found.group(2) or "10249"
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if not 0 < int(port) < 65536:
        raise ValueError("port %s is out of range" % port)
    return "http://%s:%s/proxyMode" % ("[%s]" % host if ":" in host else host, port)


def virtual_servers(ipvsadm_output: str) -> List[str]:
    """'TCP 10.43.0.1:443 rr' for each virtual server of `ipvsadm -Ln`."""
    servers = []
    for line in ipvsadm_output.splitlines():
        found = _VIRTUAL.match(line.strip())
        if found:
            servers.append(" ".join(found.groups()))
    return servers


def kubernetes_service(service_cluster_ip_range: str, port: int) -> str:
    """The `kubernetes` service's address: the first address of the service range (10.43.0.1:443 by default)."""
    network = ipaddress.ip_network(service_cluster_ip_range.split(",", 1)[0].strip(), strict=False)
    first = network.network_address + 1
    return ("[%s]:%d" if first.version == 6 else "%s:%d") % (first, port)


def split_address(address: str) -> Tuple[str, int]:
    """("10.43.0.1", 443) from "10.43.0.1:443", ("fd00::1", 443) from "[fd00::1]:443"."""
    host, _sep, port = address.rpartition(":")
    return host.strip("[]"), int(port)

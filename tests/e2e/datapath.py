"""What the end-to-end tests read of a node's data path: kube-proxy's rules and IPVS counters, connections to a
service from the node, and the verify table and task results in a play's output. Shared by test_playbooks.py and
test_clean_switch.py.
"""

from __future__ import annotations

import re

SERVICE = "10.43.0.1"
APISERVER = "10.0.2.15:6443"
CONNECT = "timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}' 2>/dev/null && echo answered || echo failed"
# A virtual server kube-proxy did not create (keepalived's, say), on the VM's own address: disable must keep it.
FOREIGN = "10.0.2.15:8443"
REJECT_APISERVER = "-d 10.0.2.15/32 -p tcp --dport 6443 -j REJECT --reject-with tcp-reset"


def connect(cluster, name, address=SERVICE, port=443):
    return cluster.ssh(name, CONNECT.format(address=address, port=port), check=False).stdout.strip()


def iptables_save(cluster, name, counters=False):
    return cluster.ssh(name, "sudo iptables-save" + (" -c" if counters else "")).stdout


def dnat_packets(cluster, name):
    """Packets through the DNAT rule of the kubernetes service's endpoint chain (iptables-save -c counters)."""
    for line in iptables_save(cluster, name, counters=True).splitlines():
        found = re.match(r"^\[(\d+):\d+\] -A KUBE-SEP-\S+ .*-j DNAT --to-destination " + re.escape(APISERVER) + "$", line)
        if found:
            return int(found.group(1))
    raise AssertionError(f"{name}: no KUBE-SEP-* DNAT rule to {APISERVER}")


def ipvs_connections(cluster, name):
    """Connections IPVS scheduled to the kubernetes service (ipvsadm -Ln --stats, the Conns column)."""
    out = cluster.ssh(name, f"sudo ipvsadm -Ln --stats -t {SERVICE}:443").stdout
    (line,) = [line for line in out.splitlines() if line.startswith("TCP")]
    return int(line.split()[2])


def table_row(stdout, name):
    """The node's row of verify's table (a JSON string in the play's output): (proxy mode, virtual servers, verdict,
    leftovers, data path)."""
    found = re.search(rf'"{name}\s+(\S+)\s+(\S+)\s+(OK|FAILED)\s+(\S+)\s+(answered|no answer|-)', stdout)
    assert found, stdout[-3000:]
    return found.groups()


def task_results(stdout, title, exact=False):
    """The result lines (changed: [node1], ok: [node2], ...) of every task whose name starts with `title` (is `title`,
    with exact=True: the leftovers step and cleanup have tasks whose names start alike)."""
    lines = []
    for section in re.split(r"^TASK \[", stdout, flags=re.MULTILINE)[1:]:
        if section.startswith("rkeops.ipvs.ipvs : " + title + ("]" if exact else "")):
            lines += re.findall(r"^(\w+): \[(node\d)\]", section, re.MULTILINE)
    return sorted(lines, key=lambda item: item[1])

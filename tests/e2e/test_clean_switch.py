"""End to end: the clean switch (issue 12) on the 2-node lab cluster - the other mode's leftovers removed, the data path
proven, both in verify's table.

The cluster is the session's (tests/e2e/conftest.py): two bookworm VMs, Kubernetes 1.24 semantics, the rke and
kube-proxy STAND-INS (tests/stand-ins). In iptables mode the kube-proxy stand-in programs kube-proxy 1.23/1.24's real
rules (KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-* with DNAT to the API server, and a REJECT for kube-dns, which has no
endpoints); in IPVS mode a real virtual server, kube-ipvs0, IPVS mode's ipsets and chains. The `kubernetes` service's
backend is the stand-in API server, a listener on 10.0.2.15:6443, which is each VM itself (QEMU's user network). The
VMs route the service range to a dummy device, so DNAT and IPVS work while an unserved address gets no answer.

Each test brings the cluster to the state it needs (ensure_fresh, ensure_ipvs) and puts back what it breaks; in file
order no state change is made twice.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from labcluster import NODES  # noqa: E402

SERVICE = "10.43.0.1"
APISERVER = "10.0.2.15:6443"
CONNECT = "timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}' 2>/dev/null && echo answered || echo failed"
# A virtual server kube-proxy did not create (keepalived's, say), on the VM's own address: disable must keep it.
FOREIGN = "10.0.2.15:8443"


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


def task_results(stdout, title):
    """The result lines (changed: [node1], ok: [node2], ...) of every task whose name starts with `title`."""
    lines = []
    for section in re.split(r"^TASK \[", stdout, flags=re.MULTILINE)[1:]:
        if section.startswith("rkeops.ipvs.ipvs : " + title):
            lines += re.findall(r"^(\w+): \[(node\d)\]", section, re.MULTILINE)
    return sorted(lines, key=lambda item: item[1])


def test_the_lab_starts_in_iptables_mode_with_real_rules(cluster):
    cluster.ensure_fresh()
    for name in NODES:
        rules = iptables_save(cluster, name)
        assert (
            '-A KUBE-SERVICES -d 10.43.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y'
            in rules
        )
        assert re.search(r"-A KUBE-SVC-NPX46M4PTMTKRN6Y .*-j KUBE-SEP-\w+", rules), rules
        assert "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000" in rules
        assert '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING' in rules
        # kube-dns has no endpoints: iptables mode rejects it in filter KUBE-SERVICES.
        assert re.search(r'-A KUBE-SERVICES -d 10\.43\.0\.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns has no endpoints" .*-j REJECT', rules)
        # The kubernetes service answers through the DNAT rule; kube-dns is rejected.
        before = dnat_packets(cluster, name)
        assert connect(cluster, name) == "answered"
        assert dnat_packets(cluster, name) > before
        assert connect(cluster, name, "10.43.0.10", 53) == "failed"


def test_enable_removes_iptables_leftovers_and_the_service_answers_through_ipvs(cluster):
    cluster.ensure_fresh()
    done, elapsed = cluster.playbook("enable")
    assert done.returncode == 0, done.stdout[-4000:]
    print(f"\nenable with the leftovers step on the 2-node lab: {elapsed:.0f} s")
    assert task_results(done.stdout, "Remove the iptables mode's leftovers") == [("changed", "node1"), ("changed", "node2")], done.stdout[-4000:]
    for name in NODES:
        assert table_row(done.stdout, name) == ("ipvs", "1", "OK", "0", "answered")
        rules = iptables_save(cluster, name)
        assert "KUBE-SVC-" not in rules and "KUBE-SEP-" not in rules, rules
        assert "REJECT" not in rules, rules
        assert "KUBE-EXTERNAL-SERVICES" not in rules and "KUBE-NODEPORTS" not in rules, rules
        # What IPVS mode uses stays: its KUBE-SERVICES rules on the KUBE-CLUSTER-IP ipset, kube-proxy's masquerading.
        assert "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT" in rules
        assert '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING' in rules
        # Docker's chains are not kube-proxy's.
        assert "-A DOCKER-USER -j RETURN" in rules
        # The kubernetes service answers, and IPVS scheduled the connection.
        before = ipvs_connections(cluster, name)
        assert connect(cluster, name) == "answered"
        assert ipvs_connections(cluster, name) > before


def test_verify_counts_stale_iptables_rules_as_leftovers(cluster):
    cluster.ensure_ipvs()
    # What iptables mode leaves behind, put back by hand on node2: a REJECT of a service that had no endpoints, with
    # its jump from OUTPUT, and a service chain in nat (as in kubernetes#102314 and calico#2617).
    stale = (
        "iptables -N KUBE-SERVICES && iptables -A KUBE-SERVICES -d 10.43.0.10/32 -p udp -m comment --comment "
        "'kube-system/kube-dns:dns has no endpoints' -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable && "
        "iptables -I OUTPUT -m conntrack --ctstate NEW -m comment --comment 'kubernetes service portals' -j KUBE-SERVICES && "
        "iptables -t nat -N KUBE-SVC-TCOU7JCQXEZGVUNU && "
        "iptables -t nat -A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment 'kube-system/kube-dns:dns' -j RETURN"
    )
    cluster.ssh("node2", f'sudo sh -c "{stale}"')
    try:
        done, _elapsed = cluster.playbook("verify", "-e", "ipvs_verify_retries=1", "-e", "ipvs_verify_delay=1")
        assert done.returncode != 0
        assert table_row(done.stdout, "node1") == ("ipvs", "1", "OK", "0", "answered")
        mode, servers, verdict, count, data_path = table_row(done.stdout, "node2")
        assert (mode, servers, verdict, data_path) == ("ipvs", "1", "FAILED", "answered")
        assert int(count) >= 3  # the filter chain, its jump from OUTPUT, the nat chain
        assert f"on node2 ({count} leftovers of iptables mode (filter: 1 chain, 1 rule; nat: 1 chain)" in done.stdout, done.stdout[-3000:]
    finally:
        cluster.ssh(
            "node2",
            'sudo sh -c \'iptables -D OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES; '
            "iptables -F KUBE-SERVICES; iptables -X KUBE-SERVICES; iptables -t nat -F KUBE-SVC-TCOU7JCQXEZGVUNU; "
            "iptables -t nat -X KUBE-SVC-TCOU7JCQXEZGVUNU'",
        )


def test_verify_names_the_address_when_the_service_does_not_answer(cluster):
    cluster.ensure_ipvs()
    # node1: the API server (the stand-in's listener) is down; node2: the virtual server has lost its real server.
    cluster.ssh("node1", "sudo sh -c 'kill $(cat /run/rke-stand-in/kube-apiserver.pid)'")
    cluster.ssh("node2", f"sudo ipvsadm -d -t {SERVICE}:443 -r {APISERVER}")
    try:
        for name in NODES:
            assert connect(cluster, name) == "failed"
        done, _elapsed = cluster.playbook("verify", "-e", "ipvs_verify_retries=1", "-e", "ipvs_verify_delay=1")
        assert done.returncode != 0
        for name in NODES:
            assert table_row(done.stdout, name) == ("ipvs", "1", "FAILED", "0", "no answer")
            assert re.search(rf"{name} \(the kubernetes service 10\.43\.0\.1:443 did not answer from this node \([^)]+\)\)", done.stdout), done.stdout[-3000:]
    finally:
        # kube-proxy's stand-in starts the listener and puts the real server back at each start.
        for name in NODES:
            cluster.ssh(name, "docker restart kube-proxy >/dev/null")
            wait = "for i in $(seq 120); do " + CONNECT.format(address=SERVICE, port=443) + " | grep -q answered && exit 0; sleep 1; done; exit 1"
            cluster.ssh(name, wait)


def test_disable_removes_the_ipvs_state_and_the_service_answers_through_dnat(cluster):
    cluster.ensure_ipvs()
    cluster.ssh("node1", f"sudo ipvsadm -A -t {FOREIGN} -s rr")
    try:
        done, _elapsed = cluster.playbook("disable")
        assert done.returncode == 0, done.stdout[-4000:]
        assert task_results(done.stdout, "Remove the IPVS mode's leftovers") == [("changed", "node1"), ("changed", "node2")], done.stdout[-4000:]
        assert table_row(done.stdout, "node1") == ("iptables", "1", "OK", "0", "answered")  # the foreign server stays
        assert table_row(done.stdout, "node2") == ("iptables", "0", "OK", "0", "answered")
        for name in NODES:
            host = cluster.host(name)
            assert not host.interface("kube-ipvs0").exists
            assert "KUBE-" not in host.check_output("ipset list -n")
            servers = host.check_output("ipvsadm -Sn")
            assert SERVICE not in servers
            assert (FOREIGN in servers) == (name == "node1"), servers
            rules = iptables_save(cluster, name)
            for ipvs_only in ("KUBE-CLUSTER-IP", "KUBE-LOOP-BACK", "KUBE-NODE-PORT ", "KUBE-LOAD-BALANCER", "KUBE-FIREWALL", "kubernetes health check rules"):
                assert ipvs_only not in rules, (name, ipvs_only)
            # iptables mode's own rules are in place again, and the kubernetes service answers through DNAT.
            assert "kube-system/kube-dns:dns has no endpoints" in rules
            before = dnat_packets(cluster, name)
            assert connect(cluster, name) == "answered"
            assert dnat_packets(cluster, name) > before
    finally:
        cluster.ssh("node1", f"sudo ipvsadm -D -t {FOREIGN}", check=False)
    # Back to the state the lab started in: cleanup (same module, nothing left to remove) and the prerequisites undone.
    done, _elapsed = cluster.playbook("disable", "-e", "ipvs_cleanup=true", "-e", "ipvs_remove_packages=true")
    assert done.returncode == 0, done.stdout[-4000:]
    # The leftovers step and cleanup's removal both find nothing left.
    assert task_results(done.stdout, "Remove the IPVS mode's leftovers") == [("ok", "node1"), ("ok", "node1"), ("ok", "node2"), ("ok", "node2")], done.stdout[
        -4000:
    ]

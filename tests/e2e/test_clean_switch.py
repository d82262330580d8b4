"""End to end: the clean switch on the 2-node lab cluster - the other mode's leftovers removed, the data path
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

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from datapath import CONNECT, FOREIGN, REJECT_APISERVER, SERVICE, connect, dnat_packets, iptables_save, table_row, task_results  # noqa: E402
from labcluster import NODES  # noqa: E402


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
    # node1: the API server (the stand-in's listener) is down; node2: a firewall rule rejects the connections IPVS
    # forwards to it. (Deleting node2's real server would not last: kube-proxy puts it back at its next sync.)
    # IPVS forwards a local client's connection in LOCAL_OUT before filter OUTPUT (ip_vs_core.c hook priorities),
    # so OUTPUT sees the real server's address.
    cluster.ssh("node1", "sudo sh -c 'kill $(cat /run/rke-stand-in/kube-apiserver.pid)'")
    cluster.ssh("node2", f"sudo iptables -I OUTPUT {REJECT_APISERVER}")
    try:
        for name in NODES:
            assert connect(cluster, name) == "failed"
        done, _elapsed = cluster.playbook("verify", "-e", "ipvs_verify_retries=1", "-e", "ipvs_verify_delay=1")
        assert done.returncode != 0
        for name in NODES:
            assert table_row(done.stdout, name) == ("ipvs", "1", "FAILED", "0", "no answer")
            assert re.search(rf"{name} \(the kubernetes service 10\.43\.0\.1:443 did not answer from this node \([^)]+\)\)", done.stdout), done.stdout[-3000:]
    finally:
        cluster.ssh("node2", f"sudo iptables -D OUTPUT {REJECT_APISERVER}", check=False)
        # kube-proxy's stand-in starts the listener at each start.
        for name in NODES:
            cluster.ssh(name, "docker restart kube-proxy >/dev/null")
            wait = "for i in $(seq 120); do " + CONNECT.format(address=SERVICE, port=443) + " | grep -q answered && exit 0; sleep 1; done; exit 1"
            cluster.ssh(name, wait)


def test_disable_removes_the_ipvs_state_and_recreates_the_kube_proxy_rke_started_as_it_was(cluster):
    """Disable from two states operators have: a virtual server kube-proxy did not make (node1), and a stopped
    kube-proxy (node2). rke up starts a stopped container as it was, old command included (DoRunContainer): after
    switch's rke up node2's kube-proxy still asks for ipvs, and a restart would start it in ipvs again; repair has
    one more rke up create it anew from cluster.yml, restarting nothing. (Here rather than in a test of its own: a
    disable and the enable back would add minutes to the lane.)"""
    cluster.ensure_ipvs()
    cluster.ssh("node1", f"sudo ipvsadm -A -t {FOREIGN} -s rr")
    cluster.ssh_patient("node2", "docker stop kube-proxy >/dev/null")
    try:
        done, _elapsed = cluster.playbook("disable")
        assert done.returncode == 0, done.stdout[-4000:]
        out = done.stdout
        assert "kube-proxy created anew by rke up: its command asked for ipvs mode (it ran in ipvs mode), now iptables" in out
        assert "kube-proxy created anew by repair's rke up on: node2" in out
        assert "kube-proxy restarted by repair on" not in out
        assert len(list(cluster.backups.glob("rke-up-*-repair.log"))) == 1
        assert not any(part.startswith("--proxy-mode=") for part in cluster.container("node2")["Config"]["Cmd"])
        assert task_results(done.stdout, "Remove the IPVS mode's leftovers", exact=True) == [("changed", "node1"), ("changed", "node2")], done.stdout[-4000:]
        assert table_row(done.stdout, "node1") == ("iptables", "1", "OK", "0", "answered")  # the foreign server stays
        assert table_row(done.stdout, "node2") == ("iptables", "0", "OK", "0", "answered")
        assert "proxy-mode" not in cluster.cluster_yml.read_text()
        # rke's JSON names in the state (types/rke_types.go json tags): extra_args is extraArgs.
        current = json.loads(cluster.rkestate.read_text())["currentState"]["rkeConfig"]
        assert "proxy-mode" not in current["services"]["kubeproxy"]["extraArgs"]
        for name in NODES:
            log = cluster.kube_proxy_log(name)
            assert '"Using iptables Proxier"' in log
            assert "Using ipvs Proxier" not in log
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
        cluster.ssh_patient("node2", "docker start kube-proxy >/dev/null 2>&1; true")
    # Back to the state the lab started in: cleanup (same module, nothing left to remove) and the prerequisites undone.
    done, _elapsed = cluster.playbook("disable", "-e", "ipvs_cleanup=true", "-e", "ipvs_remove_packages=true")
    assert done.returncode == 0, done.stdout[-4000:]
    # The leftovers step and cleanup's removal both find nothing left.
    assert task_results(done.stdout, "Remove the IPVS mode's leftovers") == [("ok", "node1"), ("ok", "node1"), ("ok", "node2"), ("ok", "node2")], done.stdout[
        -4000:
    ]
    for name in NODES:
        host = cluster.host(name)
        assert not [line for line in host.file("/proc/net/ip_vs").content_string.splitlines() if line.startswith("TCP")]
        assert not host.file("/etc/modules-load.d/rkeops-ipvs.conf").exists
        # The role installed both packages on this lab node (recorded in its file), so both go.
        for package in ("ipset", "ipvsadm"):
            assert not host.package(package).is_installed, package

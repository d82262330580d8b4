"""End to end: the enable, verify and disable playbooks on a 2-node lab cluster.

Two lab VMs (tests/lab/lab.py, Debian bookworm, real kernel, real Docker engine) form the cluster; the admin host
is this machine (localhost), holding cluster.yml, cluster.rkestate and the rke STAND-IN (tests/stand-ins/rke),
which runs the kube-proxy STAND-IN (tests/stand-ins/kube-proxy) in a `kube-proxy` container on each VM. The
playbooks target the nodes through the rkeops.ipvs.rke_cluster inventory plugin, reading that cluster.yml.

The VMs are booted once for the whole e2e run (tests/e2e/conftest.py). Each test first brings the cluster to the state it needs
(Cluster.ensure_fresh: iptables mode with nothing of the collection on the nodes; Cluster.ensure_ipvs) and puts
back what it breaks, so the tests pass in any order; in file order no state change is made twice.
The cluster uses Kubernetes 1.24 semantics, where kube-proxy falls back to iptables when IPVS is not usable
(the stand-in refuses to start instead from 1.26, which the unit tests of the log reader cover).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import lab  # noqa: E402
from datapath import connect, dnat_packets, iptables_save, ipvs_connections, table_row, task_results  # noqa: E402
from labcluster import NODES, SUCCESS, digest  # noqa: E402

README = ROOT / "README.md"


def test_iptables_mode_is_what_kube_proxy_logs_before_enable(cluster):
    cluster.ensure_fresh()
    for name in NODES:
        assert '"Using iptables Proxier"' in cluster.kube_proxy_log(name)


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


def test_no_traffic_to_private_ranges_leaves_a_lab_vm(cluster):
    """QEMU's user network would carry a connection that nothing in the VM answers out through this machine."""
    for name in NODES:
        routes = cluster.ssh(name, "ip route show type blackhole").stdout
        for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
            assert f"blackhole {net}" in routes, routes
        # The VM's own network stays reachable: its connected route is more specific than the blackhole.
        assert "dev eth0" in cluster.ssh(name, "ip route get 10.0.2.2").stdout
        # Docker's bridge came up beside the blackholes.
        assert "172.17.0.1/16" in cluster.ssh(name, "ip -4 addr show docker0").stdout
        # An unserved service address: routed to the dummy device (so DNAT still works), and nothing answers.
        assert "dev lab-svc0" in cluster.ssh(name, "ip route get 10.43.255.254").stdout
        probe = "timeout 5 bash -c 'exec 3<>/dev/tcp/{}/443' && echo connected || echo failed"
        for address in ("10.43.255.254", "192.168.1.1", "172.16.0.1", "10.1.2.3"):
            assert cluster.ssh(name, probe.format(address), check=False).stdout.strip() == "failed", (name, address)


def assert_untouched(cluster, name):
    """Nothing of the collection on the node: no modules file, no package of the role, no IPVS module loaded."""
    host = cluster.host(name)
    assert not host.file("/etc/modules-load.d/rkeops-ipvs.conf").exists
    for package in ("ipset", "ipvsadm"):
        assert not host.package(package).is_installed, package
    assert "ip_vs " not in host.file("/proc/modules").content_string


def test_check_mode_shows_the_diff_and_changes_nothing(cluster):
    cluster.ensure_fresh()
    before = (digest(cluster.cluster_yml), digest(cluster.rkestate), cluster.backup_files())
    done, _elapsed = cluster.playbook("enable", "--check", "--diff")
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"^\+\s+proxy-mode: ipvs$", done.stdout, re.MULTILINE), done.stdout[-3000:]
    assert (digest(cluster.cluster_yml), digest(cluster.rkestate), cluster.backup_files()) == before
    for name in NODES:
        assert_untouched(cluster, name)


def test_node_without_ipvs_stops_enable_in_preflight(cluster):
    cluster.break_ipvs("node2")
    try:
        before = (digest(cluster.cluster_yml), digest(cluster.rkestate), cluster.backup_files())
        nodes_before = {name: cluster.node_state(name) for name in NODES}
        done, _elapsed = cluster.playbook("enable")
        assert done.returncode != 0
        # The node is named once: the prereqs role's message does not repeat the host Ansible already names.
        assert re.search(
            r"Nothing was changed on any node, and cluster\.yml was not touched: node2: Kernel \S+ lacks the module\(s\) ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh ",
            done.stdout,
        ), done.stdout[-3000:]
        assert (digest(cluster.cluster_yml), digest(cluster.rkestate), cluster.backup_files()) == before
        # The preflight refused node2 before prepare ran anywhere: node1 was not prepared either.
        assert {name: cluster.node_state(name) for name in NODES} == nodes_before
    finally:
        cluster.repair_ipvs("node2")


def test_enable_switches_every_node_to_ipvs(cluster):
    cluster.ensure_fresh()
    before = cluster.backup_files()
    done, elapsed = cluster.playbook("enable")
    assert done.returncode == 0, done.stdout[-4000:]
    print(f"\nenable on the 2-node lab: {elapsed:.0f} s")
    # The clean switch: the iptables mode's rules removed, the service answers through IPVS.
    assert task_results(done.stdout, "Remove the iptables mode's leftovers", exact=True) == [("changed", "node1"), ("changed", "node2")], done.stdout[-4000:]
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
        connections = ipvs_connections(cluster, name)
        assert connect(cluster, name) == "answered"
        # The kernel's estimator publishes the counters every 2 s (ip_vs_est.c), so the count can lag the connection.
        cluster.wait_for(
            f"{name}: IPVS counts the connection", lambda name=name, seen=connections: ipvs_connections(cluster, name) > seen, attempts=10, delay=1
        )
    for name in NODES:
        assert re.search(rf"{name}\s+ipvs\s+1\s+OK", done.stdout), done.stdout[-2000:]
        log = cluster.kube_proxy_log(name)
        assert '"Using ipvs Proxier"' in log
        host = cluster.host(name)
        assert "TCP  10.43.0.1:443 rr" in host.check_output("ipvsadm -Ln")
        assert host.interface("kube-ipvs0").exists
        assert host.file("/etc/modules-load.d/rkeops-ipvs.conf").contains("^ip_vs$")
    assert "proxy-mode: ipvs" in cluster.cluster_yml.read_text()
    assert (cluster.cluster_yml.stat().st_mode & 0o777) == 0o600
    new = sorted(cluster.backup_files() - before)
    logs = [name for name in new if name.startswith("rke-up-")]
    assert len(logs) == 1 and SUCCESS in (cluster.backups / logs[0]).read_text()
    backups = [name for name in new if not name.startswith("rke-up-")]
    assert sorted(name.split(".")[0] + "." + name.split(".")[1] for name in backups) == ["cluster.rkestate", "cluster.yml"]
    assert all((cluster.backups / name).stat().st_mode & 0o777 == 0o600 for name in backups)


def test_second_enable_changes_nothing_and_skips_rke_up(cluster):
    cluster.ensure_ipvs()
    before = (digest(cluster.cluster_yml), digest(cluster.rkestate), cluster.backup_files())
    done, _elapsed = cluster.playbook("enable")
    assert done.returncode == 0, done.stdout[-3000:]
    assert (digest(cluster.cluster_yml), digest(cluster.rkestate), cluster.backup_files()) == before
    assert re.search(r"skipping: \[localhost\]", done.stdout)


def site_playbook() -> str:
    """The site playbook the README shows, exactly as written there."""
    text = README.read_text()
    block = text[text.index("<!-- site-playbook") :]
    return block[block.index("```yaml\n") + len("```yaml\n") : block.index("```\n", block.index("```yaml\n") + 1)]


def test_the_readme_site_playbook_includes_the_steps(cluster):
    cluster.ensure_ipvs()
    site = cluster.work / "site.yml"
    site.write_text(site_playbook())
    before = (digest(cluster.cluster_yml), digest(cluster.rkestate), cluster.backup_files())
    # Extra vars point the README's /opt/rke/cluster.yml at the lab's.
    done, _elapsed = cluster.playbook(str(site))
    assert done.returncode == 0, done.stdout[-4000:]
    for name in NODES:
        assert re.search(rf"{name}\s+ipvs\s+1\s+OK", done.stdout), done.stdout[-2000:]
    assert (digest(cluster.cluster_yml), digest(cluster.rkestate), cluster.backup_files()) == before


def container_ids(cluster):
    return {name: cluster.ssh(name, "docker inspect --format '{{.Id}}' kube-proxy").stdout.strip() for name in NODES}


def test_update_only_leaves_existing_kube_proxies_alone(cluster):
    # Why enable never passes --update-only: rke (and its stand-in) only deploys to nodes not yet in cluster.rkestate.
    cluster.ensure_ipvs()
    before = container_ids(cluster)
    done = cluster.rke_up("--update-only")
    assert done.returncode == 0, done.stdout
    assert "deploying to 0 new node(s)" in done.stdout
    assert container_ids(cluster) == before


def test_verify_alone_one_module_execution_per_node(cluster):
    cluster.ensure_ipvs()
    ssh_log = cluster.work / "ssh-verify.log"
    done, elapsed = cluster.playbook("verify", ssh_log=ssh_log)
    assert done.returncode == 0, done.stdout[-3000:]
    per_node = lab.ssh_round_trips(ssh_log, list(cluster.vms.values()))
    print(f"\nverify on the 2-node lab: {elapsed:.0f} s, SSH round trips per node: {per_node}")
    # One module execution per node when kube-proxy is already settled (plus interpreter discovery's one).
    assert all(count <= 2 for count in per_node.values()), per_node


def test_verify_names_the_node_that_fell_back(cluster):
    cluster.ensure_ipvs()
    cluster.break_ipvs("node2")
    try:
        done, _elapsed = cluster.playbook("verify", "-e", "ipvs_verify_retries=3", "-e", "ipvs_verify_delay=3")
        assert done.returncode != 0
        assert re.search(r"node1\s+ipvs\s+1\s+OK", done.stdout)
        # kube-proxy names the missing modules in Go map order, any order (research B1).
        found = re.search(r"kube-proxy is not in ipvs mode on node2 \(kube-proxy fell back to iptables; kernel modules not loaded: ([a-z_, ]+)", done.stdout)
        assert found and {"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"} <= set(found.group(1).split(", ")), done.stdout[-3000:]
        assert "Can't use the IPVS proxier" in cluster.kube_proxy_log("node2")
    finally:
        cluster.repair_ipvs("node2")
        cluster.ssh("node2", "docker restart kube-proxy >/dev/null")


def test_failed_rke_up_reports_log_and_backups_and_loses_nothing(cluster):
    cluster.ensure_ipvs()
    text = cluster.cluster_yml.read_text()
    # A second bind to /lib/modules, as in many copied guides: rke (and Docker) refuse a duplicate mount point.
    broken = text.replace("  kubeproxy:\n", "  kubeproxy:\n    extra_binds:\n      - /usr/lib/modules:/lib/modules\n", 1)
    cluster.cluster_yml.write_text(broken)
    try:
        done, _elapsed = cluster.playbook("enable", "-e", "ipvs_force_rke_up=true")
        assert done.returncode != 0
        assert "rke up failed (exit code 1)" in done.stdout
        assert "Duplicate mount point" in done.stdout
        assert "To roll back: copy both back over" in done.stdout
        stamp = re.search(r"cluster\.yml\.(\d{8}T\d{6}Z)", done.stdout).group(1)
        assert (cluster.backups / f"cluster.yml.{stamp}").read_text() == broken
        assert (cluster.backups / f"cluster.rkestate.{stamp}").exists()
        assert cluster.cluster_yml.read_text() == broken
    finally:
        cluster.cluster_yml.write_text(text)
        healed = cluster.rke_up()
        assert healed.returncode == 0, healed.stdout

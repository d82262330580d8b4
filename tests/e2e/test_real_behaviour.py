"""End to end: the behaviours of real rke and kube-proxy that the playbooks meet outside the lab.

The stand-ins (tests/stand-ins) follow rke and kube-proxy version by version, each behaviour citing its source
(docs/research/rke-kube-proxy.md). These tests prove the behaviours on the 2-VM lab cluster (tests/e2e/conftest.py,
Kubernetes 1.24 in cluster.yml), through the playbooks where the playbooks meet them. Each test brings the cluster
to the state it needs (Cluster.ensure_ipvs) and puts back what it breaks, so they run in any order.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from labcluster import NODES, STAND_INS, SUCCESS  # noqa: E402

IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh")


def container_ids(cluster):
    return {name: cluster.container(name)["Id"] for name in NODES}


def log_lines(cluster, name):
    return int(cluster.ssh_patient(name, "docker logs kube-proxy 2>&1 | wc -l").stdout.strip())


def edited(cluster, old, new):
    """cluster.yml with `old` replaced once by `new`; the original text, to put back."""
    text = cluster.cluster_yml.read_text()
    assert old in text, old
    cluster.cluster_yml.write_text(text.replace(old, new, 1))
    return text


def restore(cluster, text):
    cluster.cluster_yml.write_text(text)
    healed = cluster.rke_up()
    assert healed.returncode == 0, healed.stdout[-3000:]


def test_verify_passes_after_kube_proxy_logged_more_than_5000_lines(cluster):
    cluster.ensure_ipvs()
    # The stand-in's test knob: SIGUSR1 logs 6,000 lines of service-port churn, as kube-proxy 1.24 does at --v=2.
    cluster.ssh_patient("node1", "docker kill --signal=USR1 kube-proxy >/dev/null")
    cluster.wait_for("kube-proxy's log on node1 past 5,000 lines", lambda: log_lines(cluster, "node1") > 5000)
    tail = cluster.ssh_patient("node1", "docker logs --tail 2000 kube-proxy 2>&1").stdout
    assert "Using ipvs Proxier" not in tail
    assert "Using ipvs Proxier" in cluster.ssh_patient("node1", "docker logs kube-proxy 2>&1").stdout
    done, _elapsed = cluster.playbook("verify")
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"node1\s+ipvs\s+1\s+OK", done.stdout), done.stdout[-2000:]
    assert log_lines(cluster, "node1") > 5000


def test_modules_loadable_but_not_loaded_kube_proxy_loads_them_itself(cluster):
    """Up to 1.26 kube-proxy runs modprobe through the /lib/modules rke binds (research A2, B1)."""
    cluster.ensure_ipvs()
    binds = cluster.container("node2")["HostConfig"]["Binds"]
    assert "/lib/modules:/lib/modules:ro" in binds
    cluster.ssh_patient(
        "node2",
        "sudo sh -c 'docker stop kube-proxy >/dev/null; ipvsadm -C; ip link delete kube-ipvs0; modprobe -r ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs'",
    )
    try:
        assert not set(IPVS_MODULES) & cluster.loaded_modules("node2")
        # Still on disk, loadable.
        assert cluster.ssh_patient("node2", "sudo modinfo -n ip_vs_sh", check=False).returncode == 0
        cluster.ssh_patient("node2", "docker restart kube-proxy >/dev/null")
        assert cluster.wait_for("kube-proxy answering on node2", lambda: cluster.proxy_mode("node2")) == "ipvs"
        assert set(IPVS_MODULES) <= cluster.loaded_modules("node2")
        log = cluster.ssh_patient("node2", "docker logs --since \"$(docker inspect -f '{{.State.StartedAt}}' kube-proxy)\" kube-proxy 2>&1").stdout
        assert '"Using ipvs Proxier"' in log and "Can't use the IPVS proxier" not in log, log
        # kube-ipvs0 and the kubernetes service come with the first sync.
        cluster.wait_for("kube-ipvs0 on node2", lambda: cluster.ssh_patient("node2", "sudo ip link show kube-ipvs0", check=False).returncode == 0)
        cluster.wait_for("the kubernetes service in IPVS on node2", lambda: "10.43.0.1:443" in cluster.ssh_patient("node2", "sudo ipvsadm -Ln").stdout)
    finally:
        cluster.ssh_patient("node2", "sudo modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh; docker start kube-proxy >/dev/null")


def test_rke_up_recreates_kube_proxy_only_when_its_configuration_changed(cluster):
    cluster.ensure_ipvs()
    before = container_ids(cluster)
    for _run in range(2):
        done = cluster.rke_up()
        assert done.returncode == 0, done.stdout[-3000:]
        assert container_ids(cluster) == before
    for name in NODES:
        assert f"Upgrade not required for worker components of host {name}" in done.stdout
    # A changed argument changes the command: each node is cordoned (rke logs that at debug level) and updated.
    text = edited(cluster, "      v: 2\n", "      v: 3\n")
    try:
        done = cluster.rke("--debug", "up", "--config", str(cluster.cluster_yml))
        assert done.returncode == 0, done.stdout[-3000:]
        after = container_ids(cluster)
        assert all(after[name] != before[name] for name in NODES)
        for name in NODES:
            cordon = done.stdout.index(f"[worker] Cordoning node {name}")
            assert done.stdout.index("Successfully updated [kube-proxy] container", cordon) > cordon
            assert "--v=3" in cluster.container(name)["Config"]["Cmd"]
    finally:
        restore(cluster, text)


def test_stopped_kube_proxy_stays_stopped_on_an_existing_cluster_and_is_started_as_it_was_on_a_new_one(cluster):
    cluster.ensure_ipvs()
    before = cluster.container("node2")["Id"]
    cluster.ssh_patient("node2", "docker stop kube-proxy >/dev/null")
    state = cluster.rkestate.read_bytes()
    aside = cluster.work / "cluster.rkestate.aside"
    try:
        # Existing cluster: a host whose containers did not change is not touched (research A1).
        done = cluster.rke_up()
        assert done.returncode == 0, done.stdout[-3000:]
        stopped = cluster.container("node2")
        assert stopped["Id"] == before and not stopped["State"]["Running"]
        # New cluster (no state): DoRunContainer starts the stopped container as it is.
        cluster.rkestate.rename(aside)
        done = cluster.rke_up()
        assert done.returncode == 0, done.stdout[-3000:]
        assert "Starting stopped container [kube-proxy] on host [127.0.0.1]" in done.stdout
        started = cluster.container("node2")
        assert started["Id"] == before and started["State"]["Running"]
    finally:
        cluster.rkestate.write_bytes(state)
        aside.unlink(missing_ok=True)
        cluster.ssh_patient("node2", "docker start kube-proxy >/dev/null")


def test_rke_failure_in_the_file_log_format_names_its_cause(cluster):
    """rke v1.0.x: the fatal line ends in <nil>, the cause is only in WARN lines (research A8, sample 14); enable
    redirects rke's output, so logrus writes its file layout (A7). State: both states hold the new config (A4)."""
    cluster.ensure_ipvs()
    wrapper = cluster.work / "rke-v1.0.4"
    wrapper.write_text(f'#!/bin/sh\nRKE_STAND_IN_VERSION=v1.0.4 exec {STAND_INS / "rke"} "$@"\n')
    wrapper.chmod(0o755)
    # As in rancher/rke#1920: an extra /lib/modules bind that differs from rke's own (:z,ro on v1.0.x).
    text = edited(cluster, "  kubeproxy:\n", "  kubeproxy:\n    extra_binds:\n      - /lib/modules:/lib/modules\n")
    before = set(cluster.backups.iterdir()) if cluster.backups.exists() else set()
    try:
        done, _elapsed = cluster.playbook("enable", "-e", "ipvs_force_rke_up=true", "-e", f"ipvs_rke={wrapper}")
        assert done.returncode != 0
        assert "rke up failed (exit code 1)" in done.stdout
        assert "Duplicate mount point" in done.stdout, done.stdout[-3000:]
        logs = [path for path in set(cluster.backups.iterdir()) - before if path.name.startswith("rke-up-")]
        assert len(logs) == 1
        log = logs[0].read_text()
        fatal = [line for line in log.splitlines() if "level=fatal" in line]
        assert len(fatal) == 1 and fatal[0].startswith('time="') and fatal[0].endswith(': <nil>]"'), fatal
        assert "Duplicate mount point" not in fatal[0]
        # Three tries a host (CreateContainer), and RunWorkerPlane deploys every host at once (research A1, A8).
        warnings = [line for line in log.splitlines() if line.startswith('time="') and "level=warning" in line and "Duplicate mount point" in line]
        assert len(warnings) == 3 * len(NODES), warnings
        assert "FATA[" not in log and "\x1b[" not in log
        state = json.loads(cluster.rkestate.read_text())
        for which in ("desiredState", "currentState"):
            assert state[which]["rkeConfig"]["services"]["kubeproxy"]["extraBinds"] == ["/lib/modules:/lib/modules"]
            assert state[which]["rkeConfig"]["kubernetesVersion"] == "v1.24.17-rancher1-1"
        key = state["currentState"]["certificatesBundle"]["kube-proxy"]["keyPEM"]
        assert key.startswith("-----BEGIN RSA PRIVATE KEY-----")
        assert key.splitlines()[1] not in done.stdout + log
    finally:
        restore(cluster, text)


def test_an_identical_second_lib_modules_bind_is_merged(cluster):
    """getUniqStringList merges a bind identical to rke's own; the container does not even change (research A1, A2)."""
    cluster.ensure_ipvs()
    before = container_ids(cluster)
    text = edited(cluster, "  kubeproxy:\n", "  kubeproxy:\n    extra_binds:\n      - /lib/modules:/lib/modules:ro\n")
    try:
        done = cluster.rke_up()
        assert done.returncode == 0, done.stdout[-3000:]
        assert done.stdout.rstrip().splitlines()[-1].endswith(f'msg="{SUCCESS}"')
        assert container_ids(cluster) == before
        for name in NODES:
            binds = cluster.container(name)["HostConfig"]["Binds"]
            assert [bind for bind in binds if bind.split(":")[1] == "/lib/modules"] == ["/lib/modules:/lib/modules:ro"]
    finally:
        restore(cluster, text)


def test_unset_kubernetes_version_deploys_the_rke_default(cluster):
    """setClusterDefaults: metadata.DefaultK8sVersion (research A6); the stand-in claims rke v1.5.10."""
    cluster.ensure_ipvs()
    default = re.search(r'^DEFAULT_K8S = "([^"]+)"', (STAND_INS / "rke").read_text(), re.MULTILINE).group(1)
    text = edited(cluster, "kubernetes_version: v1.24.17-rancher1-1\n", "")
    try:
        done = cluster.rke_up()
        assert done.returncode == 0, done.stdout[-3000:]
        assert json.loads(cluster.rkestate.read_text())["currentState"]["rkeConfig"]["kubernetesVersion"] == default
        for name in NODES:
            assert f"--stand-in-kubernetes-version={default}" in cluster.container(name)["Config"]["Cmd"]
            # 1.27 and later: no module list, a dummy virtual server tried instead; the node has IPVS, so ipvs.
            assert cluster.wait_for(f"kube-proxy answering on {name}", lambda name=name: cluster.proxy_mode(name)) == "ipvs"
    finally:
        restore(cluster, text)

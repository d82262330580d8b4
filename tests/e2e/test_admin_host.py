"""End to end: the admin host's preflight, the one-run lock and the repair step of enable, on the 2-node lab cluster.

The cluster (tests/e2e/conftest.py) is two bookworm VMs with the rke and kube-proxy STAND-INS (tests/stand-ins),
Kubernetes v1.24 semantics. Each test brings the cluster to the state it needs and puts back what it breaks, so the
tests pass in any order and beside tests/e2e/test_playbooks.py.

What "refused before any change" means here: cluster.yml and cluster.rkestate keep their checksums and the backup
folder its files (no backup, no rke log, so no rke up); and every node is left as it was (nodes_as_they_are): the
modules file's checksum, the loaded IPVS modules, the ipset and ipvsadm packages. The cluster is in IPVS mode then,
where prepare would change nothing, so one node's modules file is set aside first: prepare would write it again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402
from labcluster import NODES, STAND_INS, digest  # noqa: E402


def unchanged(cluster):
    """What a refused run must leave as it was."""
    state = digest(cluster.rkestate) if cluster.rkestate.exists() else None
    return digest(cluster.cluster_yml), state, cluster.backup_files()


MODULES_FILE = "/etc/modules-load.d/rkeops-ipvs.conf"


def nodes_as_they_are(cluster) -> dict:
    return {name: cluster.node_state(name) for name in NODES}


def set_modules_file_aside(cluster, name: str = "node2") -> None:
    """What prepare would write again: its absence shows that prepare did not run (put_modules_file_back undoes it)."""
    cluster.ssh(name, f"sudo mv {MODULES_FILE} /root/rkeops-ipvs.conf.aside")


def put_modules_file_back(cluster, name: str = "node2") -> None:
    cluster.ssh(name, f"sudo sh -c 'test -e /root/rkeops-ipvs.conf.aside && mv /root/rkeops-ipvs.conf.aside {MODULES_FILE}; true'")


def rke_version() -> str:
    """The version the rke stand-in reports, as `rke --version` prints it ("rke version v1.5.10 ...")."""
    out = subprocess.run([str(STAND_INS / "rke"), "--version"], capture_output=True, text=True, check=True).stdout
    return re.search(r"version (\S+)", out).group(1)


def proxy_mode(cluster, name: str, address: str = "127.0.0.1:10249") -> str:
    """What kube-proxy's /proxyMode answers on the node at `address`, or "" when nothing answers (no curl on the VMs)."""
    probe = f"python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://{address}/proxyMode\", timeout=3).read().decode())'"
    done = cluster.ssh(name, probe, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def test_missing_state_file_of_a_running_cluster_is_refused(cluster):
    cluster.ensure_ipvs()
    aside = cluster.work / "cluster.rkestate.aside"
    cluster.rkestate.rename(aside)
    set_modules_file_aside(cluster)
    try:
        before = unchanged(cluster)
        nodes_before = nodes_as_they_are(cluster)
        # Forced, so that rke up would run: the check guards rke up.
        done, _elapsed = cluster.playbook("enable", "-e", "ipvs_force_rke_up=true")
        assert done.returncode != 0
        # No kube_config_cluster.yml on the lab's admin host: preflight's reading of the nodes tells that the cluster exists.
        assert f"rke's state file {cluster.rkestate} is missing, but the cluster exists (kube-proxy runs on node1, node2)" in done.stdout, done.stdout[-3000:]
        assert "Put cluster.rkestate back beside" in done.stdout
        assert unchanged(cluster) == before
        assert not cluster.rkestate.exists()
        assert nodes_as_they_are(cluster) == nodes_before
        assert cluster.ssh("node2", f"test -e {MODULES_FILE}", check=False).returncode != 0
    finally:
        aside.rename(cluster.rkestate)
        put_modules_file_back(cluster)


def test_unset_kubernetes_version_is_refused(cluster):
    cluster.ensure_ipvs()
    text = cluster.cluster_yml.read_text()
    assert "kubernetes_version: v1.24.17-rancher1-1\n" in text
    cluster.cluster_yml.write_text(text.replace("kubernetes_version: v1.24.17-rancher1-1\n", ""))
    set_modules_file_aside(cluster)
    try:
        before = unchanged(cluster)
        nodes_before = nodes_as_they_are(cluster)
        done, _elapsed = cluster.playbook("enable", "-e", "ipvs_force_rke_up=true")
        assert done.returncode != 0
        assert f"sets no kubernetes_version, so rke {rke_version()} would deploy its own default version" in done.stdout, done.stdout[-3000:]
        assert "-e ipvs_allow_default_kubernetes_version=true" in done.stdout
        assert unchanged(cluster) == before
        assert nodes_as_they_are(cluster) == nodes_before
        assert cluster.ssh("node2", f"test -e {MODULES_FILE}", check=False).returncode != 0
    finally:
        cluster.cluster_yml.write_text(text)
        put_modules_file_back(cluster)


def test_missing_rke_binary_is_refused_before_any_change(cluster):
    cluster.ensure_ipvs()
    set_modules_file_aside(cluster)
    try:
        before = unchanged(cluster)
        nodes_before = nodes_as_they_are(cluster)
        missing = cluster.work / "no-such-dir" / "rke"
        done, _elapsed = cluster.playbook("enable", "-e", "ipvs_force_rke_up=true", "-e", f"ipvs_rke={missing}")
        assert done.returncode != 0
        assert f"The rke binary {missing} could not be run on localhost" in done.stdout, done.stdout[-3000:]
        assert unchanged(cluster) == before
        assert nodes_as_they_are(cluster) == nodes_before
        assert cluster.ssh("node2", f"test -e {MODULES_FILE}", check=False).returncode != 0
    finally:
        put_modules_file_back(cluster)


HOLDER = textwrap.dedent(
    """\
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from ansible_collections.rkeops.ipvs.plugins.module_utils._lockfile import acquire, holder_of_this_run
    holder = holder_of_this_run("an operator's run in progress")
    acquire(sys.argv[2], holder)
    print("locked", flush=True)
    time.sleep(600)
    """
)


def test_a_held_lock_refuses_enable_naming_the_holder(cluster):
    cluster.ensure_ipvs()
    lock = cluster.work / "cluster.rkeops-ipvs.lock"
    # A background holder: another run in progress on this admin host.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, ansible_cli.environment()["ANSIBLE_COLLECTIONS_PATH"].split(":")[0], str(lock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    set_modules_file_aside(cluster)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = unchanged(cluster) + (lock.read_text(),)
        nodes_before = nodes_as_they_are(cluster)
        done, _elapsed = cluster.playbook("enable", "-e", "ipvs_force_rke_up=true")
        assert done.returncode != 0
        out = done.stdout
        assert f"Another run holds the lock {lock}" in out, out[-3000:]
        assert "play an operator's run in progress" in out
        assert f"host {os.uname().nodename}" in out
        assert f"the lock is stale: remove {lock} and run again" in out
        assert unchanged(cluster) + (lock.read_text(),) == before
        # preflight found the lock held: the nodes' prepare never ran.
        assert nodes_as_they_are(cluster) == nodes_before
        assert cluster.ssh("node2", f"test -e {MODULES_FILE}", check=False).returncode != 0
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(30)
        lock.unlink(missing_ok=True)
        put_modules_file_back(cluster)


def test_two_enables_at_once_one_is_refused_naming_the_other(cluster):
    cluster.ensure_ipvs()
    lock = cluster.work / "cluster.rkeops-ipvs.lock"
    before = cluster.backup_files()
    # Two runs at once, so started here rather than by Cluster.playbook, with the same command and environment.
    cmd = ansible_cli.command(*cluster.playbook_args("enable", "-e", "ipvs_force_rke_up=true"))
    env = ansible_cli.environment(result_format="json")
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cluster.work) for _attempt in range(2)]
    outs = [run.communicate(timeout=900)[0] for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 2], (codes, [out[-2000:] for out in outs])
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    # The refused run names the other ansible-playbook process, which held the lock through its rke up.
    assert f"Another run holds the lock {lock}" in outs[loser]
    assert f"pid {runs[winner].pid}," in outs[loser], outs[loser][-3000:]
    assert "play Patch cluster.yml and run rke up" in outs[loser]
    assert "rke up ran" in outs[winner]
    # One rke up (its log), one backup set; the lock is gone.
    new = cluster.backup_files() - before
    assert len([name for name in new if name.startswith("rke-up-")]) == 1, new
    assert not lock.exists()


def fall_back(cluster, name):
    """The node's kube-proxy falls back to iptables while cluster.yml says ipvs: its modules are gone from disk when
    it restarts; then they come back on disk, not loaded, and kube-proxy is not restarted, so it stays in iptables
    mode (whether or not kube-proxy would load them itself at its next start)."""
    cluster.break_ipvs(name)
    deadline = time.monotonic() + 120
    while "Can't use the IPVS proxier" not in cluster.kube_proxy_log(name):
        assert time.monotonic() < deadline, cluster.kube_proxy_log(name)[-2000:]
        time.sleep(3)
    cluster.restore_modules_not_loaded(name)


def put_back(cluster, name):
    """Whatever happened, the node ends with its modules in place and loaded and kube-proxy in IPVS mode."""
    # Modules back and loaded; enable restarts kube-proxy where needed and removes the iptables-mode rules it
    # programmed while it ran in iptables mode (labcluster.Cluster.repair_ipvs).
    cluster.repair_ipvs(name)


def test_enable_repairs_a_node_that_fell_back_without_changing_cluster_yml(cluster):
    cluster.ensure_ipvs()
    fall_back(cluster, "node2")
    try:
        assert "ip_vs" not in cluster.loaded_modules("node2")
        before = unchanged(cluster)
        node1_started = cluster.started_at("node1")
        node2_started = cluster.started_at("node2")
        done, _elapsed = cluster.playbook("enable")
        assert done.returncode == 0, done.stdout[-4000:]
        out = done.stdout
        # No cluster.yml change, so no backup and no rke up; kube-proxy restarted on node2 only.
        assert unchanged(cluster) == before
        assert f"rke {rke_version()} ({STAND_INS / 'rke'}): cluster.yml needs no change, rke up not run" in out
        assert cluster.started_at("node1") == node1_started
        assert cluster.started_at("node2") != node2_started
        assert "kube-proxy restarted: it ran in iptables mode, now ipvs" in out
        assert "kube-proxy restarted by repair on: node2" in out
        assert "kube-proxy restarted by repair on: node1" not in out
        for name in NODES:
            assert re.search(rf"{name}\s+ipvs\s+1\s+OK", out), out[-2000:]
        assert '"Using ipvs Proxier"' in cluster.kube_proxy_log("node2")
    finally:
        put_back(cluster, "node2")


def test_check_mode_names_the_node_it_would_restart_and_restarts_nothing(cluster):
    cluster.ensure_ipvs()
    fall_back(cluster, "node2")
    try:
        started = {name: cluster.started_at(name) for name in NODES}
        before = unchanged(cluster)
        done, _elapsed = cluster.playbook("enable", "--check")
        assert done.returncode == 0, done.stdout[-4000:]
        assert "kube-proxy would be restarted: it runs in iptables mode, not ipvs" in done.stdout
        assert re.search(r'\[node2\] => \{\s*"msg": "kube-proxy would be restarted', done.stdout), done.stdout[-3000:]
        assert not re.search(r'\[node1\] => \{\s*"msg": "kube-proxy would be restarted', done.stdout)
        assert {name: cluster.started_at(name) for name in NODES} == started
        assert unchanged(cluster) == before
    finally:
        put_back(cluster, "node2")


def test_verify_asks_the_metrics_address_cluster_yml_sets(cluster):
    cluster.ensure_ipvs()
    text = cluster.cluster_yml.read_text()
    moved = text.replace("    extra_args:\n", "    extra_args:\n      metrics-bind-address: 127.0.0.1:10251\n", 1)
    assert moved != text
    cluster.cluster_yml.write_text(moved)
    try:
        deployed = cluster.rke_up()
        assert deployed.returncode == 0, deployed.stdout
        for name in NODES:
            assert proxy_mode(cluster, name, "127.0.0.1:10251") == "ipvs"
            assert proxy_mode(cluster, name) == ""  # nothing on kube-proxy's default address
        done, _elapsed = cluster.playbook("verify", "-v")
        assert done.returncode == 0, done.stdout[-3000:]
        assert done.stdout.count('"proxy_mode_url": "http://127.0.0.1:10251/proxyMode"') >= len(NODES)
        for name in NODES:
            assert re.search(rf"{name}\s+ipvs\s+1\s+OK", done.stdout), done.stdout[-2000:]
    finally:
        cluster.cluster_yml.write_text(text)
        restored = cluster.rke_up()
        assert restored.returncode == 0, restored.stdout

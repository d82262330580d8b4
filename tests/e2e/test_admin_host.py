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

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import yaml

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


def test_no_space_beside_cluster_yml_is_refused_before_any_change(cluster):
    """cluster.yml and cluster.rkestate copied onto a 1 MiB file system (a tmpfs this test mounts, as
    root): there is no room for the backups, the patched cluster.yml and rke's state and log."""
    cluster.ensure_ipvs()
    full = cluster.work / "full-disk"
    full.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "rkeops-full", str(full)], check=True)
    set_modules_file_aside(cluster)
    try:
        # The lab's admin host has no kube_config_cluster.yml (the rke stand-in writes none).
        names = [cluster.cluster_yml.name, cluster.rkestate.name]
        for name in names:
            (full / name).write_bytes((cluster.work / name).read_bytes())
        before = {name: digest(full / name) for name in names}
        nodes_before = nodes_as_they_are(cluster)
        copy = full / cluster.cluster_yml.name
        done, _elapsed = cluster.playbook("enable", "-e", f"ipvs_cluster_yml={copy}", "-e", "ipvs_force_rke_up=true")
        assert done.returncode != 0
        refusal = rf"Not enough free space beside {re.escape(str(copy))}: \S+ KB free in {re.escape(str(full))}, and this run needs about 10\.\d+ MB there"
        assert re.search(refusal, done.stdout), done.stdout[-3000:]
        assert "Nothing was changed." in done.stdout
        # Nothing written there: no backup, no rke log (so no rke up), no lock left behind; the three files as they were.
        assert sorted(path.name for path in full.iterdir()) == sorted(names)
        assert {name: digest(full / name) for name in names} == before
        assert nodes_as_they_are(cluster) == nodes_before
        assert cluster.ssh("node2", f"test -e {MODULES_FILE}", check=False).returncode != 0
    finally:
        subprocess.run(["umount", str(full)], check=False)
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


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    tree, index = [pid], 0
    while index < len(tree):
        children = Path(f"/proc/{tree[index]}/task/{tree[index]}/children")
        tree += [int(child) for child in (children.read_text().split() if children.exists() else [])]
        index += 1
    return tree


def kill_tree(pid: int) -> list[int]:
    """SIGKILL to a whole process tree, as a crash or an OOM kill of the admin host's run: stopped first, so that no
    process starts a child between the listing and the kill."""
    tree = process_tree(pid)
    for member in tree:
        os.kill(member, signal.SIGSTOP)
    tree = process_tree(pid)  # complete now that nothing runs
    for member in tree:
        os.kill(member, signal.SIGKILL)
    return tree


def survivors(pids: list[int]) -> list[str]:
    """The command lines of the processes among `pids` that still run (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if "(zombie)" not in Path(f"/proc/{pid}/status").read_text():
                alive.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:200])
        except OSError:
            pass
    return alive


def test_rke_up_failing_on_one_node_names_the_cause_and_a_second_run_converges(cluster):
    """kube-proxy fails rke's health check on node2 (its healthz port refused inside the VM, as when kube-proxy
    crash-loops): rke up fails after deploying it, and says so (services/healthcheck.go). Disable's direction, which
    leaves the cluster in iptables mode for the next test."""
    cluster.ensure_ipvs()
    rule = "INPUT -i lo -p tcp --dport 10256 -j REJECT -m comment --comment rkeops-e2e-healthz"
    cluster.ssh("node2", f"sudo iptables -w -I {rule}")
    try:
        done, _elapsed = cluster.playbook("disable")
        assert done.returncode != 0
        out = done.stdout
        assert "rke up failed (exit code 1)" in out, out[-4000:]
        # rke's cause, with the host's address (all the lab's nodes answer on 127.0.0.1).
        assert "Failed to check http://localhost:10256/healthz for service [kube-proxy] on host [127.0.0.1]" in out
        stamp = re.search(r"Backups of this run: \S+/cluster\.yml\.(\d{8}T\d{6}Z)", out).group(1)
        assert (cluster.backups / f"cluster.yml.{stamp}").exists() and (cluster.backups / f"cluster.rkestate.{stamp}").exists()
        assert "To roll back: copy both back over" in out
        assert not (cluster.work / "cluster.rkeops-ipvs.lock").exists()
    finally:
        cluster.ssh("node2", f"sudo iptables -w -D {rule}")
    # The cause fixed: cluster.yml is patched already and rke up deployed every node, so no rke up; each node ends in
    # iptables mode with IPVS mode's leftovers removed.
    again, _elapsed = cluster.playbook("disable")
    assert again.returncode == 0, again.stdout[-4000:]
    assert "cluster.yml needs no change, rke up not run" in again.stdout
    for name in NODES:
        assert cluster.proxy_mode(name) == "iptables"
        assert re.search(rf"{name}\s+iptables\s+\d+\s+OK\s+0\s", again.stdout), again.stdout[-2000:]


def test_a_run_killed_during_rke_up_is_named_and_taken_over_and_rke_up_runs_again(cluster):
    if cluster.mode() != "iptables":
        done, _elapsed = cluster.playbook("disable")
        assert done.returncode == 0, done.stdout[-3000:]
    lock = cluster.work / "cluster.rkeops-ipvs.lock"
    before = {cluster.cluster_yml.name: digest(cluster.cluster_yml), cluster.rkestate.name: digest(cluster.rkestate)}
    logs_before = set(cluster.backups.glob("rke-up-*.log"))
    cmd = ansible_cli.command(*cluster.playbook_args("enable"))
    with open(cluster.work / "killed-enable.log", "w") as output:
        run = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, env=ansible_cli.environment(result_format="json"), cwd=cluster.work)
        record = cluster.wait_for(
            "rke up started under the lock",
            lambda: lock.exists() and (ansible_lock := json.loads(lock.read_text() or "{}")).get("progress", {}).get("rke_up_started") and ansible_lock,
            attempts=300,
            delay=1,
        )
        time.sleep(3)  # rke is busy on the nodes: SSH, docker
        killed = kill_tree(run.pid)
        run.wait(60)
    assert len(killed) >= 3, killed  # ansible-playbook, its worker and at least the shell or rke
    for _attempt in range(20):
        alive = survivors(killed)
        if not alive:
            break
        time.sleep(0.5)
    assert not alive, alive
    # Left behind: the lock, with what the run did; cluster.yml patched whole, cluster.rkestate whole JSON, the
    # backups equal to the files before the run.
    progress = record["progress"]
    assert progress["patched"] == str(cluster.cluster_yml) and "rke_up_ended" not in progress
    assert sorted(Path(path).name.rsplit(".", 1)[0] for path in progress["backups"]) == sorted(before)
    assert {Path(path).name.rsplit(".", 1)[0]: digest(Path(path)) for path in progress["backups"]} == before
    assert cluster.mode() == "ipvs" and yaml.safe_load(cluster.cluster_yml.read_text())["services"]["kubeproxy"]["extra_args"]["proxy-mode"] == "ipvs"
    json.loads(cluster.rkestate.read_text())

    done, _elapsed = cluster.playbook("enable")
    assert done.returncode == 0, done.stdout[-4000:]
    out = done.stdout
    assert f"An earlier run was interrupted while it held the lock {lock}: user " in out, out[-4000:]
    assert f"pid {record['pid']} (no longer running), started {record['started']}, play Patch cluster.yml and run rke up" in out
    backups = " and ".join(progress["backups"])
    assert f"That run had backed up {backups}, patched {cluster.cluster_yml} and started rke up at {progress['rke_up_started']} (it did not end)." in out
    assert "This run takes its lock over and runs rke up, as that run patched cluster.yml and its rke up did not end." in out
    # cluster.yml needed no change, yet rke up ran, once; the lock is gone; every node in IPVS mode.
    assert len(set(cluster.backups.glob("rke-up-*.log")) - logs_before) == 2  # the killed run's and this one's
    assert out.count("up succeeded; log") == 1
    assert not lock.exists()
    for name in NODES:
        assert cluster.proxy_mode(name) == "ipvs"
        assert re.search(rf"{name}\s+ipvs\s+\d+\s+OK", out), out[-2000:]


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

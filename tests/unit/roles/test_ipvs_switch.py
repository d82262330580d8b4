"""The admin host's part of the preflight step and the switch step of the role rkeops.ipvs.ipvs, run for real by
ansible-playbook on localhost, with a fake rke.

What it proves: the state file backed up is the one rke derives from the config file's name (cluster.conf ->
cluster.rkestate, via rke_cluster_info), and a failed rke up stops the play with rke's fatal message and its cause,
read from rke's output in the layout rke writes to a file (docs/research/rke-kube-proxy.md A7), never with the
whole log.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402

SAMPLES = ROOT / "tests" / "data" / "samples"

CLUSTER = """\
kubernetes_version: v1.26.8-rancher1-1
nodes:
  - address: 10.0.0.11
    user: rke
    role: [controlplane, etcd, worker]
services:
  kubeproxy:
    extra_args:
      v: "2"
"""

SUCCESS_OUTPUT = """\
time="2024-05-01T12:00:00Z" level=info msg="Running RKE version: v1.5.10"
time="2024-05-01T12:00:00Z" level=info msg="Initiating Kubernetes cluster"
time="2024-05-01T12:00:03Z" level=info msg="[worker] Successfully updated [kube-proxy] container on host [10.0.0.11]"
time="2024-05-01T12:00:09Z" level=info msg="Finished building Kubernetes cluster successfully"
"""


def file_layout(tty_line: str) -> str:
    """A line of rke's terminal output (logrus' colour layout) as logrus writes it to a file (key=value, Go %q)."""
    head, message = tty_line.split(" ", 1)
    level = {"INFO": "info", "WARN": "warning", "ERRO": "error", "FATA": "fatal"}[head[:4]]
    quoted = '"%s"' % message.rstrip().replace("\\", "\\\\").replace('"', '\\"')
    return 'time="2020-02-20T10:01:25Z" level=%s msg=%s' % (level, quoted)


def sample_14_in_file_layout() -> str:
    """samples/14 (rancher/rke#1920, rke v1.0.4, verbatim) as rke writes it to a file."""
    lines = [line for line in (SAMPLES / "14-rke-duplicate-lib-modules-bind_rke-1920_v1.0.4.txt").read_text().splitlines() if not line.startswith("#")]
    return "".join(file_layout(line) + "\n" for line in lines)


@pytest.fixture
def admin(tmp_path):
    """An admin host folder: cluster.conf (not .yml), its cluster.rkestate, and a fake rke that prints a given output."""
    (tmp_path / "cluster.conf").write_text(CLUSTER)
    (tmp_path / "cluster.rkestate").write_text('{"currentState": {}}\n')
    os.chmod(tmp_path / "cluster.rkestate", 0o600)
    rke = tmp_path / "bin" / "rke"
    rke.parent.mkdir()
    rke.write_text(
        textwrap.dedent(
            """\
            #!/bin/sh
            # Fake rke: answers --version as rke does (urfave/cli v1: "rke version v1.5.10"); for anything else it
            # records its arguments and working directory, prints the prepared output, exits with the prepared code.
            if [ "$1" = --version ]; then echo "rke version v1.5.10"; exit 0; fi
            echo "$PWD $*" >> "%(dir)s/rke-calls"
            if [ -e "%(dir)s/rke-sees-lock" ]; then ls "%(dir)s" > "%(dir)s/rke-saw"; fi
            cat "%(dir)s/rke-output"
            exit "$(cat "%(dir)s/rke-rc")"
            """
            % {"dir": tmp_path}
        )
    )
    rke.chmod(0o755)
    return tmp_path


def switch(admin: Path, output: str, rc: int, *args: str):
    (admin / "rke-output").write_text(output)
    (admin / "rke-rc").write_text(str(rc))
    (admin / "inventory.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n"
        "  children:\n    rke_nodes:\n      hosts:\n        node1:\n"
        "          ipvs_preflight_result: {ok: true, error: '', expected_mode: ipvs, kube_proxy: '{{ node_kube_proxy | default({}) }}'}\n"
        "          ipvs_prepare_result: {ok: true, error: ''}\n" % sys.executable
    )
    (admin / "site.yml").write_text(
        textwrap.dedent(
            """\
            - name: Patch cluster.yml and run rke up
              hosts: localhost
              gather_facts: false
              vars:
                ipvs_cluster_yml: %s
                ipvs_rke: %s
              tasks:
                - name: The admin host's checks (node1 passed its own, as the inventory says)
                  ansible.builtin.include_role:
                    name: rkeops.ipvs.ipvs
                    tasks_from: preflight

                - name: Back up and patch cluster.yml, then rke up
                  ansible.builtin.include_role:
                    name: rkeops.ipvs.ipvs
                    tasks_from: switch
            """
            % (admin / "cluster.conf", admin / "bin" / "rke")
        )
    )
    return ansible_cli.run(
        "-i",
        admin / "inventory.yml",
        admin / "site.yml",
        *args,
        # The tests match rke's messages on one line each, as JSON strings.
        result_format="json",
        cwd=admin,
        # A guard against a hang, not a time limit: make test runs this lane niced beside emulated VMs (tests/lanes.py).
        timeout=900,
    )


def backups(admin: Path):
    """The backup folder's files, their time stamp replaced by STAMP."""
    return sorted(re.sub(r"\d{8}T\d{6}Z", "STAMP", path.name) for path in (admin / "rkeops-ipvs-backups").iterdir())


def test_success_backs_up_the_state_file_rke_derives_from_cluster_conf(admin):
    done = switch(admin, SUCCESS_OUTPUT, 0)
    assert done.returncode == 0, done.stdout[-3000:]
    # cluster.conf -> cluster.rkestate (the old derivation, which stripped only .yml/.yaml, gave cluster.conf.rkestate).
    assert backups(admin) == ["cluster.conf.STAMP", "cluster.rkestate.STAMP", "rke-up-STAMP.log"]
    state_backup = next((admin / "rkeops-ipvs-backups").glob("cluster.rkestate.*"))
    assert oct(state_backup.stat().st_mode & 0o777) == "0o600"
    assert (admin / "rke-calls").read_text() == "%s up --config cluster.conf\n" % admin
    assert "proxy-mode: ipvs" in (admin / "cluster.conf").read_text()
    assert "rke v1.5.10 up succeeded" in done.stdout
    assert "rke v1.5.10 (%s): rke up ran" % (admin / "bin" / "rke") in done.stdout
    # The lock was held while rke up ran, and released after it.
    assert not (admin / "cluster.rkeops-ipvs.lock").exists()


def test_rke_v1_0_failure_names_the_fatal_message_and_the_cause_from_the_warnings(admin):
    done = switch(admin, sample_14_in_file_layout(), 1)
    assert done.returncode != 0
    out = done.stdout
    assert "rke up failed (exit code 1)" in out
    assert "rke's fatal error: [workerPlane] Failed to bring up Worker Plane:" in out
    # The cause sits only in the WARN lines (the fatal line ends with <nil>).
    assert "Failed to create Docker container [kube-proxy] on host [54.194.135.20]: Error response from daemon: Duplicate mount point: /lib/modules" in out
    # The three identical warnings, once in each copy of the message (ansible-core prints it twice).
    assert out.count("Duplicate mount point: /lib/modules") == out.count("rke's fatal error:") > 0
    assert "To roll back: copy both back over %s and %s" % (admin / "cluster.conf", admin / "cluster.rkestate") in out
    assert "level=warning" not in out  # rke's lines are summarised, not repeated


def test_exit_code_zero_without_the_success_line_is_a_failure(admin):
    done = switch(admin, SUCCESS_OUTPUT.rsplit("time=", 1)[0], 0)
    assert done.returncode != 0
    # ansible-core 2.16's default callback prints the message JSON-encoded: its quotes come out as \".
    assert 'rke up failed (exit code 0, but rke did not end with "Finished building Kubernetes cluster successfully")' in done.stdout.replace('\\"', '"')
    assert "rke's last message: [worker] Successfully updated [kube-proxy] container on host [10.0.0.11]" in done.stdout


def test_an_rke_that_does_not_run_is_refused_before_any_change(admin):
    (admin / "bin" / "rke").unlink()
    before = snapshot(admin)
    done = switch(admin, "", 127)
    assert done.returncode != 0
    assert "The rke binary %s could not be run on localhost" % (admin / "bin" / "rke") in done.stdout
    assert "set ipvs_rke to its path" in done.stdout
    assert snapshot(admin) == before


def test_an_rke_that_exits_127_during_rke_up_is_named(admin):
    # rke --version runs, rke up does not (e.g. a wrapper whose target is gone).
    done = switch(admin, "sh: 1: rke-real: not found\n", 127)
    assert done.returncode != 0
    assert "rke up failed (exit code 127)" in done.stdout
    assert "rke logged nothing; its output begins:" in done.stdout
    assert "not found" in done.stdout


def test_check_mode_reads_but_neither_backs_up_nor_runs_rke(admin):
    before = (admin / "cluster.conf").read_text()
    done = switch(admin, SUCCESS_OUTPUT, 0, "--check")
    assert done.returncode == 0, done.stdout[-3000:]
    assert not (admin / "rkeops-ipvs-backups").exists()
    assert not (admin / "rke-calls").exists()
    assert (admin / "cluster.conf").read_text() == before


def snapshot(admin: Path):
    """Every file of the admin folder but the fake rke's own records, with its content."""
    skip = {"rke-output", "rke-rc", "inventory.yml", "site.yml", "rke-calls"}
    return {str(path.relative_to(admin)): path.read_bytes() for path in sorted(admin.rglob("*")) if path.is_file() and path.name not in skip}


def test_the_lock_is_held_during_rke_up_and_released_after_a_failure(admin):
    (admin / "rke-sees-lock").write_text("")
    done = switch(admin, sample_14_in_file_layout(), 1)
    assert done.returncode != 0 and "rke up failed (exit code 1)" in done.stdout
    assert "cluster.rkeops-ipvs.lock" in (admin / "rke-saw").read_text().split()
    assert not (admin / "cluster.rkeops-ipvs.lock").exists()


def test_a_held_lock_refuses_the_run_naming_the_holder_and_changes_nothing(admin):
    holder = dict(
        token="x", user="alice", host="admin1", pid=4242, pid_is_ansible_playbook=True, started="2026-12-06T14:30:00Z", play="Patch cluster.yml and run rke up"
    )
    (admin / "cluster.rkeops-ipvs.lock").write_text(json.dumps(holder))
    before = snapshot(admin)
    done = switch(admin, SUCCESS_OUTPUT, 0, "-e", "ipvs_force_rke_up=true")
    assert done.returncode != 0
    out = done.stdout
    assert "Another run holds the lock %s" % (admin / "cluster.rkeops-ipvs.lock") in out
    for part in ("user alice", "host admin1", "pid 4242", "started 2026-12-06T14:30:00Z", "play Patch cluster.yml and run rke up"):
        assert part in out
    assert "the lock is stale: remove %s and run again" % (admin / "cluster.rkeops-ipvs.lock") in out
    assert not (admin / "rke-calls").exists()
    assert snapshot(admin) == before  # the lock is still alice's, nothing backed up or patched


def test_a_missing_state_file_of_an_existing_cluster_is_refused(admin):
    (admin / "cluster.rkestate").unlink()
    (admin / "kube_config_cluster.conf").write_text("apiVersion: v1\n")
    before = snapshot(admin)
    done = switch(admin, SUCCESS_OUTPUT, 0)
    assert done.returncode != 0
    assert (
        "rke's state file %s is missing, but the cluster exists (%s is there)" % (admin / "cluster.rkestate", admin / "kube_config_cluster.conf") in done.stdout
    )
    assert not (admin / "rke-calls").exists()
    assert snapshot(admin) == before
    # A new cluster (no kubeconfig, no kube-proxy) has no state yet: rke up runs.
    (admin / "kube_config_cluster.conf").unlink()
    done = switch(admin, SUCCESS_OUTPUT, 0)
    assert done.returncode == 0, done.stdout[-3000:]


def test_a_missing_state_file_with_kube_proxy_on_a_node_is_refused(admin):
    (admin / "cluster.rkestate").unlink()
    done = switch(admin, SUCCESS_OUTPUT, 0, "-e", '{"node_kube_proxy": {"container": {"exists": true}}}')
    assert done.returncode != 0
    assert "the cluster exists (kube-proxy runs on node1)" in done.stdout
    assert not (admin / "rke-calls").exists()


def test_an_unset_kubernetes_version_is_refused_unless_allowed(admin):
    (admin / "cluster.conf").write_text(CLUSTER.replace("kubernetes_version: v1.26.8-rancher1-1\n", ""))
    before = snapshot(admin)
    done = switch(admin, SUCCESS_OUTPUT, 0)
    assert done.returncode != 0
    assert "sets no kubernetes_version, so rke v1.5.10 would deploy its own default version" in done.stdout
    assert "-e ipvs_allow_default_kubernetes_version=true" in done.stdout
    assert snapshot(admin) == before and not (admin / "rke-calls").exists()
    done = switch(admin, SUCCESS_OUTPUT, 0, "-e", "ipvs_allow_default_kubernetes_version=true")
    assert done.returncode == 0, done.stdout[-3000:]
    assert (admin / "rke-calls").exists()


def test_no_change_needs_no_rke_up_and_no_state_checks(admin):
    first = switch(admin, SUCCESS_OUTPUT, 0)
    assert first.returncode == 0
    (admin / "rke-calls").unlink()
    (admin / "cluster.rkestate").unlink()
    (admin / "kube_config_cluster.conf").write_text("apiVersion: v1\n")
    done = switch(admin, SUCCESS_OUTPUT, 0)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "rke v1.5.10 (%s): cluster.yml needs no change, rke up not run" % (admin / "bin" / "rke") in done.stdout
    assert not (admin / "rke-calls").exists()

"""The switch step of the role rkeops.ipvs.ipvs run for real by ansible-playbook on localhost, with a fake rke.

What it proves: the state file backed up is the one rke derives from the config file's name (cluster.conf ->
cluster.rkestate, via rke_cluster_info), and a failed rke up stops the play with rke's fatal message and its cause,
read from rke's output in the layout rke writes to a file (docs/research/rke-kube-proxy.md A7), never with the
whole log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or shutil.which("ansible-playbook")
SAMPLES = ROOT / "docs" / "research" / "samples"

CLUSTER = """\
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
            # Fake rke: records its arguments and working directory, prints the prepared output, exits with the prepared code.
            echo "$PWD $*" >> "%(dir)s/rke-calls"
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
        "  children:\n    rke_nodes:\n      hosts:\n        node1:\n          prereqs_report: {ipvs_ready: true}\n" % sys.executable
    )
    (admin / "site.yml").write_text(
        textwrap.dedent(
            """\
            - name: Switch kube-proxy to IPVS
              hosts: localhost
              gather_facts: false
              tasks:
                - name: Back up and patch cluster.yml, then rke up
                  ansible.builtin.include_role:
                    name: rkeops.ipvs.ipvs
                    tasks_from: switch
                  vars:
                    ipvs_cluster_yml: %s
                    ipvs_rke: %s
            """
            % (admin / "cluster.conf", admin / "bin" / "rke")
        )
    )
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / "build" / "collections"))
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(admin / "inventory.yml"), str(admin / "site.yml"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=admin,
        check=False,
        timeout=300,
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
    assert "rke up succeeded" in done.stdout


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


def test_an_rke_that_does_not_run_is_named(admin):
    (admin / "bin" / "rke").unlink()
    done = switch(admin, "", 127)
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

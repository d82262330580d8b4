"""run_lock through AnsibleModule: take, refuse naming the holder, check mode writes nothing, release by token."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.rkeops.ipvs.plugins.modules import run_lock


def run(capsys, check=False, **params):
    args = dict(params)
    args["_ansible_check_mode"] = check
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        run_lock.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exited.value.code
    return result


def test_take_refuse_release(capsys, tmp_path):
    lock = tmp_path / "cluster.rkeops-ipvs.lock"
    first = run(capsys, path=str(lock), play="Patch cluster.yml and run rke up")
    assert first["changed"] and first["_rc"] == 0
    assert first["lock"]["play"] == "Patch cluster.yml and run rke up"
    held = json.loads(lock.read_text())
    assert held["token"] == first["lock"]["token"]

    second = run(capsys, path=str(lock), play="other")
    assert second["failed"] and second["_rc"] == 1
    assert "Another run holds the lock %s" % lock in second["msg"]
    assert "user %s" % held["user"] in second["msg"] and "pid %d" % held["pid"] in second["msg"]
    assert "play Patch cluster.yml and run rke up" in second["msg"]
    assert "token" not in second["lock"]
    assert json.loads(lock.read_text()) == held

    # Another run's token leaves the lock alone.
    other = run(capsys, path=str(lock), state="absent", token="not-mine")
    assert not other["changed"] and lock.exists()
    released = run(capsys, path=str(lock), state="absent", token=first["lock"]["token"])
    assert released["changed"] and not lock.exists()
    assert released["lock"]["play"] == "Patch cluster.yml and run rke up"


def test_check_mode_writes_nothing_and_still_reports_a_held_lock(capsys, tmp_path):
    lock = tmp_path / "l.lock"
    would = run(capsys, check=True, path=str(lock))
    assert would["changed"] and not lock.exists()
    lock.write_text(json.dumps(dict(token="t", user="alice", host="h", pid=1, started="s", play="p")))
    refused = run(capsys, check=True, path=str(lock))
    assert refused["failed"] and "user alice" in refused["msg"]
    kept = run(capsys, check=True, path=str(lock), state="absent", force=True)
    assert kept["changed"] and lock.exists()


def test_absent_needs_a_token_or_force(capsys, tmp_path):
    lock = tmp_path / "l.lock"
    lock.write_text("{}")
    refused = run(capsys, path=str(lock), state="absent")
    assert refused["failed"] and "force=true" in refused["msg"]
    forced = run(capsys, path=str(lock), state="absent", force=True)
    assert forced["changed"] and not lock.exists()


def test_a_missing_directory_is_named(capsys, tmp_path):
    missing = run(capsys, path=str(tmp_path / "nowhere" / "l.lock"))
    assert missing["failed"] and "%s does not exist" % (tmp_path / "nowhere") in missing["msg"]


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def stale_record(**progress) -> dict:
    """A lock left by a killed run of ansible-playbook on this host."""
    record = dict(
        token="old",
        user="alice",
        host=socket.gethostname(),
        pid=dead_pid(),
        pid_is_ansible_playbook=True,
        started="2026-12-06T14:30:00Z",
        play="Patch cluster.yml and run rke up",
    )
    if progress:
        record["progress"] = progress
    return record


def test_progress_is_recorded_in_the_lock_and_named_to_a_refused_run(capsys, tmp_path):
    lock = tmp_path / "cluster.rkeops-ipvs.lock"
    token = run(capsys, path=str(lock), play="switch")["lock"]["token"]
    backups = ["/opt/rke/rkeops-ipvs-backups/cluster.yml.20261206T143001Z", "/opt/rke/rkeops-ipvs-backups/cluster.rkestate.20261206T143001Z"]
    assert run(capsys, path=str(lock), token=token, progress=dict(backups=backups))["changed"]
    done = run(capsys, path=str(lock), token=token, progress=dict(patched="/opt/rke/cluster.yml", rke_up_started="2026-12-06T14:30:05Z"))
    assert done["lock"]["progress"] == dict(backups=backups, patched="/opt/rke/cluster.yml", rke_up_started="2026-12-06T14:30:05Z")
    assert json.loads(lock.read_text())["token"] == token  # the same lock, still this run's
    assert [path.name for path in tmp_path.iterdir()] == [lock.name]  # no temporary file left
    refused = run(capsys, path=str(lock), play="other")
    assert refused["failed"]
    assert (
        "That run had backed up %s and %s, patched /opt/rke/cluster.yml and started rke up at 2026-12-06T14:30:05Z (it did "
        "not end)." % tuple(backups) in refused["msg"]
    )
    # Another run's token cannot write into the lock.
    other = run(capsys, path=str(lock), token="not-mine", progress=dict(patched=""))
    assert other["failed"] and "This run no longer holds the lock" in other["msg"]


def test_a_stale_lock_is_taken_over_and_its_record_returned(capsys, tmp_path):
    lock = tmp_path / "cluster.rkeops-ipvs.lock"
    lock.write_text(json.dumps(stale_record(backups=["/b/cluster.yml.1"], patched="/opt/rke/cluster.yml", rke_up_started="t1")))
    # Without take_over_stale: refused, saying it looks stale and what the run had done.
    refused = run(capsys, path=str(lock))
    assert refused["failed"] and "the lock looks stale" in refused["msg"] and "started rke up at t1 (it did not end)" in refused["msg"]
    # Check mode: reported, left in place.
    seen = run(capsys, check=True, path=str(lock), take_over_stale=True)
    assert seen["_rc"] == 0 and seen["interrupted"]["user"] == "alice" and json.loads(lock.read_text())["token"] == "old"
    taken = run(capsys, path=str(lock), play="next run", take_over_stale=True)
    assert taken["_rc"] == 0 and taken["changed"]
    assert json.loads(lock.read_text())["token"] == taken["lock"]["token"] != "old"
    assert "token" not in taken["interrupted"]
    assert taken["interrupted"]["progress"]["patched"] == "/opt/rke/cluster.yml"
    assert taken["interrupted"]["done"] == "That run had backed up /b/cluster.yml.1, patched /opt/rke/cluster.yml and started rke up at t1 (it did not end)."
    assert sorted(path.name for path in tmp_path.iterdir()) == [lock.name]


@pytest.mark.parametrize(
    "holder",
    [
        dict(stale_record(), pid=os.getpid()),  # its ansible-playbook still runs
        dict(stale_record(), host="another-admin-host"),  # cannot be told from here
        dict(stale_record(), pid_is_ansible_playbook=False),  # the pid may not be the run's
        {},  # the holder is still writing the file
    ],
)
def test_a_lock_whose_holder_may_live_is_never_taken_over(capsys, tmp_path, holder):
    lock = tmp_path / "l.lock"
    lock.write_text(json.dumps(holder))
    refused = run(capsys, path=str(lock), take_over_stale=True)
    assert refused["failed"] and refused["interrupted"] == {}
    assert json.loads(lock.read_text()) == holder

"""run_lock through AnsibleModule: take, refuse naming the holder, check mode writes nothing, release by token."""

from __future__ import annotations

import json

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

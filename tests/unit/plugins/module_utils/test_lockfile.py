"""_lockfile: one holder at a time (O_EXCL, also under a real race), the holder named, released only by its owner."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils import _lockfile
from ansible_collections.rkeops.ipvs.plugins.module_utils._lockfile import LockHeld, acquire, ansible_playbook_pid, refusal, release


def holder(**extra):
    data = dict(
        token="t1", user="alice", host=socket.gethostname(), pid=os.getpid(), pid_is_ansible_playbook=True, started="2026-12-06T14:30:00Z", play="Patch"
    )
    data.update(extra)
    return data


def test_the_first_takes_it_the_second_is_refused_naming_the_first(tmp_path):
    lock = tmp_path / "cluster.rkeops-ipvs.lock"
    acquire(str(lock), holder())
    assert oct(lock.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(LockHeld) as refused:
        acquire(str(lock), holder(token="t2", user="bob"))
    assert refused.value.holder["user"] == "alice"
    assert json.loads(lock.read_text())["token"] == "t1"  # the refused run wrote nothing


def _take(path, token, start, results):
    start.wait()
    try:
        acquire(path, holder(token=token))
        results.put(token)
    except LockHeld:
        results.put(None)


def test_processes_racing_for_the_lock_get_it_once(tmp_path):
    lock = str(tmp_path / "race.lock")
    for _round in range(5):
        results = multiprocessing.Queue()
        start = multiprocessing.Barrier(8)
        procs = [multiprocessing.Process(target=_take, args=(lock, "t%d" % i, start, results)) for i in range(8)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        winners = [token for token in (results.get(timeout=5) for _proc in procs) if token]
        assert len(winners) == 1
        assert json.loads(open(lock).read())["token"] == winners[0]
        os.unlink(lock)


def test_release_only_by_the_token_that_took_it_or_by_force(tmp_path):
    lock = tmp_path / "l.lock"
    acquire(str(lock), holder())
    assert release(str(lock), "someone-else") is None
    assert lock.exists()
    assert release(str(lock), "t1")["user"] == "alice"
    assert not lock.exists()
    assert release(str(lock), "t1") is None  # already gone: nothing to do
    acquire(str(lock), holder())
    assert release(str(lock), "", force=True)["token"] == "t1"
    assert not lock.exists()


def test_a_failed_write_leaves_no_lock(tmp_path, monkeypatch):
    lock = tmp_path / "l.lock"

    def broken_fsync(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_lockfile.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        acquire(str(lock), holder())
    assert not lock.exists()


def test_refusal_names_the_holder_and_how_to_clear_a_stale_lock():
    message = refusal("/opt/rke/cluster.rkeops-ipvs.lock", holder(), this_host=socket.gethostname())
    for part in ("user alice", "host %s" % socket.gethostname(), "pid %d" % os.getpid(), "started 2026-12-06T14:30:00Z", "play Patch"):
        assert part in message
    assert "remove /opt/rke/cluster.rkeops-ipvs.lock and run again" in message
    assert "looks stale" not in message  # this process runs
    assert "t1" not in message  # the token is not shown


def test_a_holder_whose_playbook_process_is_gone_is_called_stale():
    dead = multiprocessing.Process(target=int)
    dead.start()
    dead.join()
    message = refusal("/x.lock", holder(pid=dead.pid), this_host=socket.gethostname())
    assert "No process %d runs on %s now" % (dead.pid, socket.gethostname()) in message
    # On another host, or with a pid that is not ansible-playbook's, nothing is claimed.
    assert "stale:" in refusal("/x.lock", holder(pid=dead.pid, host="elsewhere"), this_host=socket.gethostname())
    assert "looks stale" not in refusal("/x.lock", holder(pid=dead.pid, host="elsewhere"), this_host=socket.gethostname())
    assert "looks stale" not in refusal("/x.lock", holder(pid=dead.pid, pid_is_ansible_playbook=False), this_host=socket.gethostname())


def test_an_empty_lock_is_a_run_taking_it_now(tmp_path):
    lock = tmp_path / "l.lock"
    lock.write_text("")
    with pytest.raises(LockHeld) as refused:
        acquire(str(lock), holder())
    assert "the file is still empty" in refusal(str(lock), refused.value.holder)


def fake_proc(tmp_path, table):
    """A /proc with pid -> (ppid, argv)."""
    for pid, (ppid, argv) in table.items():
        folder = tmp_path / str(pid)
        folder.mkdir()
        (folder / "stat").write_text("%d (%s) S %d 1 1 0\n" % (pid, os.path.basename(argv[0])[:15], ppid))
        (folder / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    return str(tmp_path)


def test_the_outermost_ansible_playbook_ancestor_is_the_run(tmp_path):
    proc = fake_proc(
        tmp_path,
        {
            50: (40, ["/bin/sh", "-c", "python3 module.py"]),
            40: (30, ["/usr/bin/python3", "/venv/bin/ansible-playbook", "-e", "password=x", "site.yml"]),  # the worker
            30: (20, ["/usr/bin/python3", "/venv/bin/ansible-playbook", "-e", "password=x", "site.yml"]),  # the run
            20: (1, ["-bash"]),
        },
    )
    assert ansible_playbook_pid(start=50, proc=proc) == 30


def test_no_ansible_playbook_ancestor_gives_none(tmp_path):
    proc = fake_proc(tmp_path, {50: (40, ["/bin/sh", "-c", "x"]), 40: (1, ["sshd: rke@notty"])})
    assert ansible_playbook_pid(start=50, proc=proc) is None

# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lock file that lets one run at a time change an RKE cluster (private to the collection).

The lock is taken by creating the file with O_CREAT | O_EXCL: the kernel creates it for one caller only, so two runs
that start at the same instant cannot both get it (a test-then-write would let both through). The file holds who
took it, as JSON, so that a refused run can name the holder. Runs on the admin host: Python 3.6 syntax at most.
"""

import datetime
import errno
import json
import os
import pwd
import socket
import uuid
from typing import Dict, Optional

LOCK_MODE = 0o600
# How far up the process tree the ansible-playbook process is looked for.
_MAX_ANCESTORS = 32


class LockHeld(Exception):
    """The lock is held; ``holder`` is what its file says (possibly empty while its holder is still writing it)."""

    def __init__(self, path: str, holder: Dict[str, object]):
        super().__init__(path)
        self.path = path
        self.holder = holder


def _parent_and_name(pid: int, proc: str):
    """(parent pid, program names of argv[0] and argv[1]) of ``pid`` from /proc, or None when it cannot be read."""
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as handle:
            stat = handle.read().decode("utf-8", "replace")
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            argv = handle.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return None
    # The command name in stat is in parentheses and may itself hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    names = [os.path.basename(arg) for arg in argv[:2]]
    return int(fields[1]), names


def ansible_playbook_pid(start: Optional[int] = None, proc: str = "/proc") -> Optional[int]:
    """The pid of the ansible-playbook process this module runs under, when it runs on the same host, else None.

    ansible-playbook forks a worker per task, and the worker starts the module (through a shell); both carry
    ansible-playbook's command line. The outermost of them is the run itself, which lives as long as the run.
    Only program names are compared: the rest of the command line (which may hold extra vars) is never kept.
    """
    pid = os.getppid() if start is None else start
    found = None
    for _step in range(_MAX_ANCESTORS):
        if pid <= 1:
            break
        read = _parent_and_name(pid, proc)
        if read is None:
            break
        parent, names = read
        if any(name.startswith("ansible-playbook") for name in names):
            found = pid
        elif found is not None:
            break
        pid = parent
    return found


def holder_of_this_run(play: str, now: Optional[datetime.datetime] = None) -> Dict[str, object]:
    """Who takes the lock: user, host, pid (of ansible-playbook, else of this module's parent), start time, play."""
    now = now or datetime.datetime.utcnow()
    playbook_pid = ansible_playbook_pid()
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    sudo_user = os.environ.get("SUDO_USER", "")
    if sudo_user and sudo_user != user:
        user = "%s (sudo from %s)" % (user, sudo_user)
    return dict(
        token=uuid.uuid4().hex,
        user=user,
        host=socket.gethostname(),
        pid=playbook_pid if playbook_pid is not None else os.getppid(),
        pid_is_ansible_playbook=playbook_pid is not None,
        started=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        play=play,
    )


def read_holder(path: str) -> Dict[str, object]:
    """What the lock file says; {} when it is empty (its holder is still writing it) or not JSON."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def acquire(path: str, holder: Dict[str, object]) -> None:
    """Create the lock file for ``holder``, or raise LockHeld naming the current holder. OSError for other failures."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, LOCK_MODE)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        try:
            current = read_holder(path)
        except OSError:
            current = {}  # released between the two calls: still refused, the caller may run again
        raise LockHeld(path, current) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(holder, sort_keys=True).encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        # Never leave a lock behind that nobody holds.
        os.unlink(path)
        raise


def release(path: str, token: str, force: bool = False) -> Optional[Dict[str, object]]:
    """Remove the lock when ``token`` holds it (or with ``force``); returns what the file said, None when it was not removed."""
    try:
        current = read_holder(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    if not force and current.get("token") != token:
        return None
    os.unlink(path)
    return current


def record(path: str, token: str, progress: Dict[str, object]) -> Dict[str, object]:
    """Add ``progress`` (what the run has done so far) to the lock ``token`` holds, and return the lock's content.

    Written to a new file beside it, synced, then renamed over it: a run killed at any moment leaves the old record
    or the new one, never half of one, for the next run to read. LockHeld when ``token`` does not hold the lock.
    """
    current = read_holder(path)
    if current.get("token") != token:
        raise LockHeld(path, current)
    merged = dict(current.get("progress") or {})
    merged.update(progress)
    current["progress"] = merged
    fresh = "%s.%s.tmp" % (path, uuid.uuid4().hex)
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, LOCK_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(current, sort_keys=True).encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(fresh, path)
    except BaseException:
        if os.path.exists(fresh):
            os.unlink(fresh)
        raise
    return current


def is_stale(holder: Dict[str, object], this_host: Optional[str] = None) -> bool:
    """Whether the run that holds the lock is provably gone: its ansible-playbook ran on this host and no longer runs.
    Anything less certain (another host, a pid that is not ansible-playbook's, an empty file) is a live holder."""
    this_host = this_host or socket.gethostname()
    return bool(holder.get("pid_is_ansible_playbook")) and holder.get("host") == this_host and not pid_runs(holder.get("pid"))


def take_over(path: str, holder: Dict[str, object], stale: Dict[str, object]) -> None:
    """Take the lock from ``stale``, the holder that is_stale() found gone, for ``holder``.

    The stale file is renamed aside first (rename is atomic: of two runs taking over at once, one gets ENOENT and is
    refused), its token checked to be the stale one (a run that took the lock meanwhile keeps it), then the lock is
    acquired as usual. LockHeld when another run was quicker.
    """
    aside = "%s.%s.interrupted" % (path, uuid.uuid4().hex)
    try:
        os.rename(path, aside)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise LockHeld(path, {}) from None
        raise
    moved = read_holder(aside)
    if moved.get("token") != stale.get("token"):
        # Not the file judged stale: another run took over and locked in between. Its lock goes back in place.
        try:
            os.link(aside, path)
        finally:
            os.unlink(aside)
        raise LockHeld(path, moved)
    os.unlink(aside)
    acquire(path, holder)


def pid_runs(pid: object) -> bool:
    try:
        os.kill(int(pid), 0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def public(holder: Dict[str, object]) -> Dict[str, object]:
    """The holder without its token (which only the run that took the lock needs)."""
    return dict((key, value) for key, value in holder.items() if key != "token")


def refusal(path: str, holder: Dict[str, object], this_host: Optional[str] = None) -> str:
    """The message of a refused run: who holds the lock, and how to clear a lock whose run is over."""
    this_host = this_host or socket.gethostname()
    if not holder:
        who = "another run that is taking it right now (the file is still empty)"
    else:
        parts = []  # type: List[str]
        for key, label in (("user", "user"), ("host", "host"), ("pid", "pid"), ("started", "started"), ("play", "play")):
            if holder.get(key) not in (None, ""):
                parts.append("%s %s" % (label, holder[key]))
        who = "another run: " + ", ".join(parts)
    stale = ""
    if is_stale(holder, this_host):
        stale = " No process %s runs on %s now, so that run is over and the lock looks stale." % (holder.get("pid"), this_host)
    return (
        "Another run holds the lock %s, so this run changed nothing: %s.%s%s "
        "Wait for that run to end and run again. If it is over (killed, or its host restarted) and no `rke up` "
        "runs for this cluster (ps -ef | grep 'rke up'), the lock is stale: remove %s and run again." % (path, who, stale, done_so_far(holder), path)
    )


def done_so_far(holder: Dict[str, object]) -> str:
    """What the holder's progress record says it did, as a sentence (empty when it recorded nothing)."""
    progress = holder.get("progress") or {}
    if not progress:
        return ""
    said = []
    if progress.get("backups"):
        said.append("backed up " + " and ".join(str(path) for path in progress["backups"]))
    said.append("patched %s" % progress["patched"] if progress.get("patched") else "left cluster.yml unpatched")
    if progress.get("rke_up_started"):
        ended = progress.get("rke_up_ended")
        said.append("started rke up at %s (%s)" % (progress["rke_up_started"], "it ended at %s" % ended if ended else "it did not end"))
    else:
        said.append("not run rke up")
    return " That run had " + ", ".join(said[:-1]) + " and " + said[-1] + "."

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: run_lock
short_description: One run at a time on an RKE cluster, with a lock file beside cluster.yml
version_added: 0.1.0
description:
  - Takes or releases a lock file on the RKE admin host, so that two runs never patch C(cluster.yml) and run
    C(rke up) for the same cluster at the same time.
  - The lock is taken by creating the file with C(O_CREAT|O_EXCL), which the kernel grants to one caller only, and
    holds who took it (user, host, pid, start time, play) as JSON, mode C(0600).
  - When the lock is held, the module fails naming the holder and saying how to clear a stale lock; nothing else
    is touched. When the holder's C(ansible-playbook) process ran on this host and is gone, the message says the
    lock looks stale.
  - A lock is released only by the run that took it (RV(lock.token)), unless O(force=true).
  - The run that holds the lock records what it has done so far in it (O(progress)), so that the run after a killed
    one can say what that run did - which backups it made, whether it patched C(cluster.yml), whether C(rke up) ran
    to its end.
  - With O(take_over_stale=true), a lock whose holder is provably gone (its C(ansible-playbook) ran on this host and
    no longer runs) is taken over, and RV(interrupted) says what that run had recorded.
author:
  - rkeops.ipvs maintainers (@rkeops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Check mode reports a held lock as a failure and otherwise what would change, and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description: The lock file. Its directory must exist.
    type: path
    required: true
  state:
    description: V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  token:
    description: With O(state=absent), the RV(lock.token) the run got when it took the lock; another run's lock is left alone.
    type: str
    default: ""
  force:
    description: With O(state=absent), remove the lock whoever holds it (for a stale lock, once no run is going on).
    type: bool
    default: false
  play:
    description: What the run is, recorded in the lock and named to a refused run (for example the play's name).
    type: str
    default: ""
  progress:
    description:
      - "With O(state=present) and the O(token) of the run that holds the lock, what it has done so far, merged into
        the lock's record (written beside it and renamed over it, so never half-written), for example
        C({backups: [...], patched: /opt/rke/cluster.yml, rke_up_started: 2026-12-06T14:31:00Z}). The keys
        C(backups), C(patched), C(rke_up_started) and C(rke_up_ended) are the ones a refusal and RV(interrupted)
        put into words."
      - The lock is not taken again; the module fails when O(token) does not hold it.
    type: dict
  take_over_stale:
    description:
      - With O(state=present), take over a lock whose holder is provably gone instead of failing, and return its
        record as RV(interrupted). Anything less certain (a holder on another host, or whose pid is not its
        C(ansible-playbook)) is still refused.
      - In check mode, the stale lock is reported in RV(interrupted) and left in place.
    type: bool
    default: false
notes:
  - The pid recorded is that of the C(ansible-playbook) process when it runs on the host of the lock (the admin host
    is the controller), else that of the module's parent process.
  - The command line of C(ansible-playbook) is never recorded (it may hold extra vars).
"""

EXAMPLES = r"""
- name: Change cluster.yml, one run at a time
  block:
    - name: Take the lock beside cluster.yml
      rkeops.ipvs.run_lock:
        path: /opt/rke/cluster.rkeops-ipvs.lock
        play: "{{ ansible_play_name }}"
      register: __lock

    - name: Run rke up
      ansible.builtin.command: rke up --config cluster.yml
      args:
        chdir: /opt/rke
      changed_when: true
  always:
    - name: Release the lock
      rkeops.ipvs.run_lock:
        path: /opt/rke/cluster.rkeops-ipvs.lock
        state: absent
        token: "{{ __lock.lock.token }}"
      when: __lock.lock.token is defined

- name: Clear a stale lock (no run is going on)
  rkeops.ipvs.run_lock:
    path: /opt/rke/cluster.rkeops-ipvs.lock
    state: absent
    force: true
"""

RETURN = r"""
lock:
  description:
    - O(state=present) - who holds the lock now (this run); O(state=absent) - what the removed lock said, empty
      when nothing was removed. On failure, the holder that refused this run (without its token).
  returned: always
  type: dict
  contains:
    token:
      description: This run's secret for releasing its own lock (O(state=present) only).
      type: str
    user:
      description: The user that took the lock.
      type: str
      sample: admin
    host:
      description: The host name of the host that holds the lock file.
      type: str
      sample: rke-admin
    pid:
      description: The pid of the run's C(ansible-playbook) process, else of the module's parent process.
      type: int
      sample: 4242
    pid_is_ansible_playbook:
      description: Whether RV(lock.pid) is the C(ansible-playbook) process.
      type: bool
    started:
      description: When the lock was taken (UTC).
      type: str
      sample: "2026-12-06T14:30:00Z"
    play:
      description: O(play) of the run that took it.
      type: str
    progress:
      description: What the run recorded with O(progress).
      type: dict
interrupted:
  description:
    - The record of the run whose stale lock was taken over (O(take_over_stale)), without its token; empty when
      there was none. Its key C(done) says in words what that run had done.
  returned: always
  type: dict
  sample: {user: admin, host: rke-admin, pid: 4242, started: "2026-12-06T14:30:00Z", play: Switch, done: "...",
           progress: {backups: [/opt/rke/rkeops-ipvs-backups/cluster.yml.20261206T143001Z], patched: /opt/rke/cluster.yml,
                      rke_up_started: "2026-12-06T14:30:05Z"}}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.rkeops.ipvs.plugins.module_utils._lockfile import (
    LockHeld,
    acquire,
    done_so_far,
    holder_of_this_run,
    is_stale,
    public,
    read_holder,
    record,
    refusal,
    release,
    take_over,
)


def interrupted(holder: dict) -> dict:
    """The stale holder's record as returned: without its token, with what it had done in words."""
    found = public(holder)
    found["done"] = done_so_far(holder).strip() or "That run had recorded nothing it did."
    return found


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            token=dict(type="str", default="", no_log=True),
            force=dict(type="bool", default=False),
            play=dict(type="str", default=""),
            progress=dict(type="dict"),
            take_over_stale=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = os.path.abspath(module.params["path"])
    if not os.path.isdir(os.path.dirname(path)):
        missing = os.path.dirname(path)
        module.fail_json(msg="The lock's directory %s does not exist: give run_lock a path beside cluster.yml." % missing, lock={}, interrupted={})
    try:
        if module.params["state"] == "present" and module.params["progress"] is not None:
            if not module.params["token"]:
                module.fail_json(msg="progress needs the token of the run that holds the lock.", lock={}, interrupted={})
            if module.check_mode:
                module.exit_json(changed=True, lock={}, interrupted={})
            try:
                current = record(path, module.params["token"], module.params["progress"])
            except LockHeld as held:
                module.fail_json(msg="This run no longer holds the lock %s: %s" % (path, refusal(path, held.holder)), lock=public(held.holder), interrupted={})
            module.exit_json(changed=True, lock=public(current), interrupted={})
        if module.params["state"] == "present":
            take = module.params["take_over_stale"]
            if module.check_mode:
                if os.path.lexists(path):
                    current = read_holder(path)
                    if take and is_stale(current):
                        module.exit_json(changed=True, lock={}, interrupted=interrupted(current))
                    module.fail_json(msg=refusal(path, current), lock=public(current), interrupted={})
                module.exit_json(changed=True, lock={}, interrupted={})
            holder = holder_of_this_run(module.params["play"])
            try:
                acquire(path, holder)
            except LockHeld as held:
                if not (take and is_stale(held.holder)):
                    module.fail_json(msg=refusal(path, held.holder), lock=public(held.holder), interrupted={})
                try:
                    take_over(path, holder, held.holder)
                except LockHeld as quicker:
                    module.fail_json(msg=refusal(path, quicker.holder), lock=public(quicker.holder), interrupted={})
                module.exit_json(changed=True, lock=holder, interrupted=interrupted(held.holder))
            module.exit_json(changed=True, lock=holder, interrupted={})
        if not module.params["token"] and not module.params["force"]:
            module.fail_json(msg="state=absent needs the token of the run that took the lock, or force=true for a stale lock.", lock={}, interrupted={})
        if module.check_mode:
            current = read_holder(path) if os.path.exists(path) else None
            mine = current is not None and (module.params["force"] or current.get("token") == module.params["token"])
            module.exit_json(changed=mine, lock=public(current) if mine else {}, interrupted={})
        removed = release(path, module.params["token"], module.params["force"])
    except OSError as exc:
        module.fail_json(msg="Could not use the lock %s: %s" % (path, to_native(exc)), lock={}, interrupted={})
    module.exit_json(changed=removed is not None, lock=public(removed) if removed is not None else {}, interrupted={})


if __name__ == "__main__":
    main()

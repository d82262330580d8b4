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
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.rkeops.ipvs.plugins.module_utils._lockfile import (
    LockHeld,
    acquire,
    holder_of_this_run,
    public,
    read_holder,
    refusal,
    release,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            token=dict(type="str", default="", no_log=True),
            force=dict(type="bool", default=False),
            play=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    path = os.path.abspath(module.params["path"])
    if not os.path.isdir(os.path.dirname(path)):
        module.fail_json(msg="The lock's directory %s does not exist: give run_lock a path beside cluster.yml." % os.path.dirname(path), lock={})
    try:
        if module.params["state"] == "present":
            if module.check_mode:
                if os.path.lexists(path):
                    module.fail_json(msg=refusal(path, read_holder(path)), lock=public(read_holder(path)))
                module.exit_json(changed=True, lock={})
            holder = holder_of_this_run(module.params["play"])
            try:
                acquire(path, holder)
            except LockHeld as held:
                module.fail_json(msg=refusal(path, held.holder), lock=public(held.holder))
            module.exit_json(changed=True, lock=holder)
        if not module.params["token"] and not module.params["force"]:
            module.fail_json(msg="state=absent needs the token of the run that took the lock, or force=true for a stale lock.", lock={})
        if module.check_mode:
            current = read_holder(path) if os.path.exists(path) else None
            mine = current is not None and (module.params["force"] or current.get("token") == module.params["token"])
            module.exit_json(changed=mine, lock=public(current) if mine else {})
        removed = release(path, module.params["token"], module.params["force"])
    except OSError as exc:
        module.fail_json(msg="Could not use the lock %s: %s" % (path, to_native(exc)), lock={})
    module.exit_json(changed=removed is not None, lock=public(removed) if removed is not None else {})


if __name__ == "__main__":
    main()

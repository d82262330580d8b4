# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from ansible.errors import AnsibleFilterError

from ansible_collections.rkeops.ipvs.plugins.module_utils._rke_log import summarize

DOCUMENTATION = r"""
---
name: rke_log_summary
short_description: Whether C(rke up) succeeded, and if not its fatal error and the cause, from rke's output
version_added: 0.1.0
description:
  - Reads the output of C(rke up) in both layouts rke's logger (logrus) writes - C(FATA[0085] ...) on a terminal,
    C(time="..." level=fatal msg="...") when the output goes to a file or a pipe - and says whether rke succeeded,
    that is exit code 0 and C(Finished building Kubernetes cluster successfully) as rke's last message.
  - On failure it gives rke's fatal message and, when that message lost the error (rke v1.0.x ends it with
    C(<nil>)), the earlier warnings of the failing step that hold it (for example Docker's
    C(Duplicate mount point)); without a fatal message, rke's last warnings and its last message.
  - It never repeats the whole output; every message shown is shortened and has URL passwords and private keys masked.
positional: rc
options:
  _input:
    description: rke's output (standard output and error together).
    type: str
    required: true
  rc:
    description: rke's exit code; success needs V(0).
    type: int
"""

EXAMPLES = r"""
- name: Run rke up, its output in a file
  ansible.builtin.shell: rke up --config cluster.yml > rke-up.log 2>&1
  args:
    chdir: /opt/rke
  register: __rke_up
  changed_when: true
  failed_when: false

- name: Read rke's output
  ansible.builtin.slurp:
    src: /opt/rke/rke-up.log
  register: __rke_log

- name: Stop with rke's own reason when it failed
  ansible.builtin.assert:
    that: __rke.ok
    fail_msg: "rke up failed (exit code {{ __rke_up.rc }}): {{ __rke.message }}"
  vars:
    __rke: "{{ __rke_log.content | b64decode | rkeops.ipvs.rke_log_summary(__rke_up.rc) }}"
"""

RETURN = r"""
_value:
  description: What rke said about itself.
  type: dict
  contains:
    ok:
      description: Whether rke succeeded (exit code 0 and the success line as its last message).
      type: bool
    rc:
      description: The exit code given.
      type: int
    fatal:
      description: rke's fatal message (or the first line of a Go panic), empty when there is none.
      type: str
      sample: "[workerPlane] Failed to bring up Worker Plane: [Failed to create [kube-proxy] container on host [10.0.0.11]: ...]"
    cause:
      description:
        - When the fatal message lost its error (it ends with C(<nil>)), the earlier warnings of the step that failed (or the
          last three warnings); without a fatal message and on failure, the last three warnings or errors.
      type: list
      elements: str
      sample: ["Failed to create Docker container [kube-proxy] on host [10.0.0.11]: Error response from daemon: Duplicate mount point: /lib/modules"]
    last_message:
      description: rke's last message.
      type: str
      sample: Finished building Kubernetes cluster successfully
    message:
      description: All of the above in words, one finding a line, for a failure message.
      type: str
"""


def rke_log_summary(text, rc=None):
    """See DOCUMENTATION."""
    if not isinstance(text, str):
        raise AnsibleFilterError("rke_log_summary expects rke's output as text, got %s" % type(text).__name__)
    try:
        code = None if rc is None or rc == "" else int(rc)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("rke_log_summary: rc=%r is not an exit code" % (rc,)) from exc
    return summarize(text, code)


class FilterModule:
    def filters(self):
        return {"rke_log_summary": rke_log_summary}

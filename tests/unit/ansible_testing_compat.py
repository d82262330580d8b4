"""patch_module_args for ansible-core 2.16 to 2.18, which lack ansible.module_utils.testing (added in 2.19).

tests/unit/conftest.py installs this module under that name only on those releases; on 2.19 and later the tests
use ansible-core's own. Same contract: the given args are what AnsibleModule instances created inside see.
"""

from __future__ import annotations

import contextlib
import json
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes


@contextlib.contextmanager
def patch_module_args(args=None):
    if not isinstance(args, (dict, type(None))):
        raise TypeError("The `args` arg must be a dict or None.")
    with mock.patch.object(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))):
        yield

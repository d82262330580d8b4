# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a file in place safely (private to the collection). Runs on the nodes: Python 3.6 syntax at most."""

import os
import tempfile
from typing import Optional

from ansible.module_utils.common.text.converters import to_bytes


def write_atomically(module, path: str, text: str, prefix: str, mode: Optional[int] = None, unsafe_writes: bool = False) -> None:
    """Write through a temporary file in the target's directory, then rename it into place with atomic_move.

    Raises OSError when the temporary file cannot be written (the target is then untouched); atomic_move fails
    through fail_json. The temporary file never stays behind.
    """
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(text, encoding="utf-8"))
        if mode is not None:
            os.chmod(tmp, mode)
        module.atomic_move(tmp, path, unsafe_writes=unsafe_writes)
    finally:
        # atomic_move fails through fail_json (SystemExit): never leave the temporary behind.
        if os.path.exists(tmp):
            os.remove(tmp)

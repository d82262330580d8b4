"""Modules run on the managed node, outside the controller; keep their tests there too."""

from __future__ import annotations

import pytest

try:
    from ansible.module_utils import _internal
except ImportError:  # ansible-core before 2.19 (make units-oldest): module warnings always go to the result
    _internal = None


@pytest.fixture(autouse=True)
def outside_the_controller(monkeypatch):
    # Importing controller code (the inventory plugin's tests do) makes ansible-core route module warnings to the
    # controller's display instead of the module's result; a module on a node never sees that.
    if _internal is not None:
        monkeypatch.setattr(_internal, "is_controller", False)

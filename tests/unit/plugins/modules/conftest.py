"""Modules run on the managed node, outside the controller; keep their tests there too."""

from __future__ import annotations

import pytest
from ansible.module_utils import _internal


@pytest.fixture(autouse=True)
def outside_the_controller(monkeypatch):
    # Importing controller code (the inventory plugin's tests do) makes ansible-core route module warnings to the
    # controller's display instead of the module's result; a module on a node never sees that.
    monkeypatch.setattr(_internal, "is_controller", False)

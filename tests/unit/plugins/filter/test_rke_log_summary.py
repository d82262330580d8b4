"""The filter rkeops.ipvs.rke_log_summary: what the role's rke_up step reads (the reading itself: test_rke_log.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.rkeops.ipvs.plugins.filter.rke_log_summary import FilterModule, rke_log_summary

FATAL = 'time="2024-05-01T12:00:02Z" level=fatal msg="[workerPlane] Failed to bring up Worker Plane: [boom]"\n'


def test_registered_under_its_name():
    assert FilterModule().filters() == {"rke_log_summary": rke_log_summary}


def test_exit_code_as_registered_or_as_text():
    assert rke_log_summary(FATAL, 1)["fatal"] == "[workerPlane] Failed to bring up Worker Plane: [boom]"
    assert rke_log_summary(FATAL, "1")["rc"] == 1
    assert rke_log_summary("", None)["rc"] is None


@pytest.mark.parametrize(("text", "rc"), [(None, 1), (b"bytes", 1), ("", "one")])
def test_bad_input_is_refused_clearly(text, rc):
    with pytest.raises(AnsibleFilterError, match="rke_log_summary"):
        rke_log_summary(text, rc)

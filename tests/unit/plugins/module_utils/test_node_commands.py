"""_node_commands: a command's output, or a failure that names the command and what it said."""

from __future__ import annotations

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._node_commands import run


class Failed(Exception):
    pass


class Module:
    """run_command answering (rc, stdout, stderr); fail_json raising, as AnsibleModule's exits."""

    def __init__(self, rc, out, err):
        self.answer = (rc, out, err)
        self.calls = []

    def run_command(self, args, **kwargs):
        self.calls.append((args, kwargs))
        return self.answer

    def fail_json(self, **result):
        raise Failed(result)


def test_run_returns_stdout_and_passes_the_input():
    module = Module(0, "*filter\nCOMMIT\n", "")
    assert run(module, ["/usr/sbin/iptables-nft-restore", "--noflush"], data="*filter\nCOMMIT\n") == "*filter\nCOMMIT\n"
    assert module.calls == [(["/usr/sbin/iptables-nft-restore", "--noflush"], {"data": "*filter\nCOMMIT\n", "binary_data": True})]


def test_run_fails_naming_the_command_its_code_and_its_error():
    with pytest.raises(Failed) as failed:
        run(Module(2, "", "ipset v7.17: Set cannot be destroyed: it is in use by a kernel component\n"), ["/usr/sbin/ipset", "destroy", "KUBE-LOOP-BACK"])
    result = failed.value.args[0]
    assert result["msg"] == "/usr/sbin/ipset destroy KUBE-LOOP-BACK failed (rc 2): ipset v7.17: Set cannot be destroyed: it is in use by a kernel component"
    assert result["rc"] == 2
    # Named as asked, and with stdout when stderr is empty.
    with pytest.raises(Failed) as failed:
        run(
            Module(1, "iptables-restore: line 3 failed\n", ""),
            ["/usr/sbin/iptables-legacy-restore", "--noflush", "-w", "5"],
            what="iptables-legacy-restore --noflush",
        )
    assert failed.value.args[0]["msg"] == "iptables-legacy-restore --noflush failed (rc 1): iptables-restore: line 3 failed"

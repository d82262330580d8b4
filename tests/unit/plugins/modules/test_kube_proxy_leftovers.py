"""kube_proxy_leftovers through AnsibleModule against a stand-in node: two iptables backends, ipset, ipvsadm, ip.

The stand-in applies iptables-restore --noflush input itself (chain lines flush, -D deletes the first equal rule,
-X refuses a chain still referenced or not empty, as the kernel does), so the module's restore input is checked
by what it does, not by its text.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.rkeops.ipvs.plugins.modules import kube_proxy_leftovers

IPTABLES_MODE = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]
:KUBE-SEP-A - [0:0]
:cali-OUTPUT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j cali-OUTPUT
-A KUBE-SERVICES -d 10.43.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
-A KUBE-SVC-NPX46M4PTMTKRN6Y -j KUBE-SEP-A
-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 192.0.2.10:6443
COMMIT
*filter
:INPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.43.0.20/32 -p tcp -m comment --comment "default/empty has no endpoints" -m tcp --dport 80 -j REJECT
COMMIT
"""
IPVS_MODE = """*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-NODE-PORT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
COMMIT
"""


class Node:
    """iptables (both backends), ipset, ipvsadm and ip as the module sees them."""

    def __init__(self, legacy="", nft=""):
        self.saves = {"legacy": legacy, "nft": nft}
        self.sets = {}
        self.services = []
        self.devices = {}
        self.calls = []

    def restore(self, backend, data):
        """Apply iptables-restore --noflush input to the backend's text."""
        tables, order, table = {}, [], None
        for line in self.saves[backend].splitlines():
            if line.startswith("*"):
                table = tables.setdefault(line[1:], {"chains": [], "rules": []})
                order.append(line[1:])
            elif line.startswith(":"):
                table["chains"].append(line)
            elif line.startswith("-A "):
                table["rules"].append(line)
        for line in data.splitlines():
            if line.startswith("*"):
                table = tables[line[1:]]
            elif line.startswith(":"):
                name = line[1:].split()[0]
                table["rules"] = [rule for rule in table["rules"] if rule.split()[1] != name]
            elif line.startswith("-D "):
                table["rules"].remove("-A " + line[3:])  # ValueError: no such rule, as iptables fails
            elif line.startswith("-X "):
                name = line.split()[1]
                assert not [rule for rule in table["rules"] if rule.split()[1] == name or rule.endswith("-j " + name)], name
                table["chains"] = [chain for chain in table["chains"] if chain[1:].split()[0] != name]
        text = []
        for name in order:
            text += ["*" + name] + tables[name]["chains"] + tables[name]["rules"] + ["COMMIT"]
        self.saves[backend] = "\n".join(text) + "\n"

    def run_command(self, module, args, data=None, **kwargs):
        assert module.run_command_environ_update == {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
        self.calls.append(list(args))
        tool = os.path.basename(args[0])
        if tool.endswith("-save") and tool.startswith("iptables-"):
            return 0, self.saves[tool.split("-")[1]], ""
        if tool.endswith("-restore"):
            assert args[1:] == ["--noflush"]
            try:
                self.restore(tool.split("-")[1], data)
            except (ValueError, AssertionError) as exc:
                return 1, "", "iptables-restore: line 2 failed: %s\n" % exc
            return 0, "", ""
        if tool == "ipset" and args[1] == "save":
            out = ["create %s hash:ip,port" % name + "".join("\nadd %s %s" % (name, member) for member in members) for name, members in self.sets.items()]
            return 0, "\n".join(out) + "\n", ""
        if tool == "ipset" and args[1] == "destroy":
            self.sets.pop(args[2])
            return 0, "", ""
        if tool == "ipvsadm" and args[1:] == ["-S", "-n"]:
            flags = {"TCP": "-t", "UDP": "-u"}
            return 0, "".join("-A %s %s -s rr\n" % (flags[s.split()[0]], s.split()[1]) for s in self.services), ""
        if tool == "ipvsadm" and args[1] == "-D":
            proto = {"-t": "TCP", "-u": "UDP"}[args[2]]
            self.services.remove("%s %s" % (proto, args[3]))
            return 0, "", ""
        if tool == "ip" and args[1:3] == ["-o", "addr"]:
            return 0, "".join("9: %s    inet %s/32 scope global %s\\\n" % (args[-1], a, args[-1]) for a in self.devices[args[-1]]), ""
        if tool == "ip" and args[1:3] == ["link", "delete"]:
            self.devices.pop(args[3])
            return 0, "", ""
        raise AssertionError("unexpected command %r" % (args,))


@pytest.fixture
def node(monkeypatch):
    node = Node()

    def run_command(module, args, **kwargs):
        return node.run_command(module, args, **kwargs)

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/sbin/" + name)
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda path: path.startswith("/sys/class/net/") and path.split("/")[-1] in node.devices or real_exists(path))
    return node


def run(capsys, check=False, diff=False, **params):
    with patch_module_args(dict(params, _ansible_check_mode=check, _ansible_diff=diff)), pytest.raises(SystemExit) as exited:
        kube_proxy_leftovers.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exited.value.code
    return result


def test_ipvs_mode_removes_the_iptables_mode_chains_in_the_backend_that_holds_them(node, capsys):
    node.saves["nft"] = IPTABLES_MODE
    node.saves["legacy"] = "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"
    checked = run(capsys, check=True, diff=True, current_mode="ipvs")
    assert checked["changed"] is True and checked["backend"] == "nft"
    assert checked["found"]["count"] == 5 and checked["removed"]["count"] == 0
    assert node.saves["nft"] == IPTABLES_MODE
    assert "-A KUBE-SERVICES -d 10.43.0.20/32" in checked["diff"]["before"] and checked["diff"]["after"] == ""
    done = run(capsys, current_mode="ipvs")
    assert done["changed"] is True and done["removed"]["count"] == 5
    assert "KUBE-SVC" not in node.saves["nft"] and "has no endpoints" not in node.saves["nft"]
    assert "-A OUTPUT -j cali-OUTPUT" in node.saves["nft"] and "-A INPUT -j KUBE-FIREWALL" in node.saves["nft"]
    assert [call for call in node.calls if "restore" in call[0]] == [["/usr/sbin/iptables-nft-restore", "--noflush"]]
    again = run(capsys, current_mode="ipvs")
    assert again["changed"] is False and again["found"]["count"] == 0


def test_iptables_mode_removes_ipvs_state_but_not_keepalived(node, capsys):
    node.saves["legacy"] = IPVS_MODE
    node.sets = {"KUBE-CLUSTER-IP": ["10.43.0.1,tcp:443"], "keepalived": []}
    node.services = ["TCP 10.43.0.1:443", "TCP 192.0.2.100:80"]
    node.devices = {"kube-ipvs0": ["10.43.0.1"]}
    done = run(capsys, current_mode="iptables")
    assert done["changed"] is True and done["backend"] == "legacy"
    assert done["removed"]["ipvs_services"] == ["TCP 10.43.0.1:443"]
    assert node.services == ["TCP 192.0.2.100:80"] and list(node.sets) == ["keepalived"] and node.devices == {}
    assert "KUBE-NODE-PORT" not in node.saves["legacy"] and "--match-set" not in node.saves["legacy"]
    # iptables first, then IPVS, the ipsets, the device: a set still matched by a rule cannot be destroyed.
    tools = [os.path.basename(call[0]) + " " + call[1] for call in node.calls if call[1:2] and call[1] in ("--noflush", "-D", "destroy", "link")]
    assert tools == ["iptables-legacy-restore --noflush", "ipvsadm -D", "ipset destroy", "ip link"]
    assert run(capsys, current_mode="iptables")["changed"] is False


def test_nothing_to_do_on_a_node_without_kube_proxy(node, capsys):
    node.saves["nft"] = "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\nCOMMIT\n"
    result = run(capsys, current_mode="ipvs")
    assert result["changed"] is False and result["backend"] == "" and result["found"]["count"] == 0


def test_a_backend_the_node_lacks_is_refused_naming_it(node, capsys, monkeypatch):
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: None if "legacy" in name else "/usr/sbin/" + name)
    result = run(capsys, current_mode="ipvs", backend="legacy")
    assert result["_rc"] == 1 and "backend=legacy" in result["msg"] and "iptables-legacy-save" in result["msg"]
    assert node.calls == []


def test_a_failed_restore_fails_before_ipvs_and_ipsets_change(node, capsys, monkeypatch):
    node.saves["legacy"] = IPVS_MODE
    node.sets = {"KUBE-CLUSTER-IP": []}
    node.services = ["TCP 10.43.0.1:443"]
    node.devices = {"kube-ipvs0": ["10.43.0.1"]}
    monkeypatch.setattr(Node, "restore", lambda self, backend, data: (_ for _ in ()).throw(ValueError("Resource busy")))
    result = run(capsys, current_mode="iptables")
    assert result["_rc"] == 1 and "iptables-legacy-restore --noflush failed" in result["msg"]
    assert node.services == ["TCP 10.43.0.1:443"] and list(node.sets) == ["KUBE-CLUSTER-IP"] and "kube-ipvs0" in node.devices

"""kernel_modules run through AnsibleModule against a stand-in kernel: the file on disk, modprobe calls, check mode."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.rkeops.ipvs.plugins.modules import kernel_modules

RELEASE = "6.1.0-28-amd64"
IPVS = ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]
HEADER = (
    "# Managed by Ansible (rkeops.ipvs.prereqs): kernel modules kube-proxy needs for IPVS mode.\n"
    "# systemd-modules-load.service loads them at boot. Local edits are overwritten.\n"
)


class Kernel:
    """What the module sees of the running kernel, and modprobe / modinfo acting on it."""

    def __init__(self, available=tuple(IPVS), loaded=(), builtin=()):
        self.available = set(available)
        self.loaded = set(loaded)
        self.builtin = set(builtin)
        self.calls = []
        self.modprobe_rc = 0

    def run_command(self, module, args, **kwargs):
        # Every command runs in the C locale, so that its output can be read.
        assert module.run_command_environ_update == {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
        self.calls.append(args)
        tool = os.path.basename(args[0])
        names = [arg for arg in args[1:] if not arg.startswith("-")]
        if tool == "modinfo":
            name = names[-1]
            return (0, name + "\n", "") if name in self.available else (1, "", "modinfo: ERROR: Module %s not found.\n" % name)
        unknown = [name for name in names if name not in self.available]
        if self.modprobe_rc or unknown:
            return self.modprobe_rc or 1, "", "modprobe: FATAL: Module %s not found in directory /lib/modules/%s\n" % ((unknown or names)[0], RELEASE)
        if "--dry-run" not in args:
            if "--remove" in args:
                self.loaded -= set(names)
            else:
                self.loaded |= set(names)
        return 0, "", ""

    def modprobe_calls(self):
        return [args[1:] for args in self.calls if args[0].endswith("modprobe")]


@pytest.fixture
def kernel(monkeypatch):
    kernel = Kernel()

    def run_command(module, args, **kwargs):  # AnsibleModule.run_command, answered by the stand-in kernel
        return kernel.run_command(module, args, **kwargs)

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/sbin/" + name)
    monkeypatch.setattr(kernel_modules, "running_kernel_modules", lambda release: (set(kernel.loaded), set(kernel.builtin)))
    monkeypatch.setattr(os, "uname", lambda: ("Linux", "node1", RELEASE, "#1 SMP", "x86_64"))
    isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda path: path == "/lib/modules/" + RELEASE or isdir(path))
    return kernel


@pytest.fixture
def persist_file(tmp_path):
    return tmp_path / "modules-load.d" / "rkeops-ipvs.conf"


def run(capsys, check=False, diff=False, **params):
    args = dict(params, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        kernel_modules.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exited.value.code
    return result


def snapshot(path):
    info = os.stat(path)
    return path.read_bytes(), info.st_mtime_ns, stat.S_IMODE(info.st_mode)


def test_first_run_loads_and_persists_second_run_changes_nothing(kernel, persist_file, capsys):
    params = dict(name=IPVS, persist_file=str(persist_file), notes={"installed-packages": ["ipset", "ipvsadm"]})
    first = run(capsys, **params)
    assert first["_rc"] == 0 and first["changed"] is True and first["persist_changed"] is True
    assert first["loaded"] == IPVS
    assert kernel.modprobe_calls() == [["--all"] + IPVS]
    assert first["modules"] == dict.fromkeys(IPVS, "loaded")
    assert persist_file.read_text() == HEADER + "# installed-packages: ipset ipvsadm\n" + "\n".join(IPVS) + "\n"
    assert stat.S_IMODE(persist_file.stat().st_mode) == 0o644
    assert stat.S_IMODE(persist_file.parent.stat().st_mode) == 0o755

    before = snapshot(persist_file)
    kernel.calls.clear()
    second = run(capsys, **params)
    assert second["changed"] is False and second["persist_changed"] is False and second["loaded"] == []
    assert snapshot(persist_file) == before  # not rewritten
    assert kernel.calls == []  # every module loaded: neither modprobe nor modinfo


def test_check_mode_reports_the_change_and_leaves_no_trace(kernel, persist_file, capsys):
    kernel.loaded = {"nf_conntrack"}
    result = run(capsys, check=True, diff=True, name=IPVS, persist_file=str(persist_file))
    assert result["changed"] is True and result["persist_changed"] is True
    assert result["loaded"] == IPVS[:4]
    # modprobe --dry-run still fails on a module the kernel cannot load.
    assert kernel.modprobe_calls() == [["--dry-run", "--all"] + IPVS[:4]]
    assert result["modules"] == {"ip_vs": "loadable", "ip_vs_rr": "loadable", "ip_vs_wrr": "loadable", "ip_vs_sh": "loadable", "nf_conntrack": "loaded"}
    assert result["diff"]["before"] == "" and result["diff"]["after"].endswith("ip_vs_sh\nnf_conntrack\n")
    assert kernel.loaded == {"nf_conntrack"}
    assert not persist_file.parent.exists()


def test_check_mode_fails_on_a_module_the_kernel_cannot_load(kernel, persist_file, capsys):
    result = run(capsys, check=True, name=["ip_vs", "ip_vs_nope"], persist_file=str(persist_file))
    assert result["failed"] is True
    assert result["msg"].startswith("modprobe --dry-run failed (rc=1): modprobe: FATAL: Module ip_vs_nope not found")
    assert not persist_file.parent.exists()


def test_modprobe_failure_changes_nothing_on_disk(kernel, persist_file, capsys):
    persist_file.parent.mkdir()
    persist_file.write_text(HEADER + "ip_vs\n")
    before = snapshot(persist_file)
    kernel.modprobe_rc = 1
    result = run(capsys, name=IPVS, persist_file=str(persist_file))
    assert result["failed"] is True and result["rc"] == 1
    # Ansible names the host in front of the failure; the message does not repeat it.
    assert result["msg"].startswith("modprobe failed (rc=1): ")
    assert "node1" not in result["msg"]
    assert snapshot(persist_file) == before


def test_notes_are_written_as_given_and_an_empty_one_not_at_all(kernel, persist_file, capsys):
    run(capsys, name=["ip_vs"], persist_file=str(persist_file), notes={"zeta": "b a", "alpha": ["x"], "installed-packages": []})
    assert persist_file.read_text() == HEADER + "# alpha: x\n# zeta: b a\nip_vs\n"


@pytest.mark.parametrize(
    ("notes", "message"),
    [
        ({"Installed Packages": ["ipset"]}, "notes: key 'Installed Packages' is not a lower-case word"),
        ({"installed-packages": ["ip set"]}, "notes: installed-packages must be a list of words without spaces"),
        ({"installed-packages": [""]}, "notes: installed-packages must be a list of words without spaces"),
        ({"installed-packages": {"ipset": 1}}, "notes: installed-packages must be a list of words without spaces"),
    ],
)
def test_notes_that_would_not_read_back_fail_before_anything_changes(kernel, persist_file, capsys, notes, message):
    result = run(capsys, name=IPVS, persist_file=str(persist_file), notes=notes)
    assert result["failed"] is True
    assert result["msg"].startswith(message)
    assert kernel.calls == [] and not persist_file.parent.exists()


def test_load_false_writes_the_file_only(kernel, persist_file, capsys):
    kernel.available = set()  # a container: no module tree of this kernel
    result = run(capsys, name=IPVS, load=False, persist_file=str(persist_file))
    assert result["changed"] is True and result["loaded"] == []
    assert kernel.modprobe_calls() == []
    assert result["modules"] == dict.fromkeys(IPVS, "missing")
    assert persist_file.read_text().endswith("\n".join(IPVS) + "\n")


def test_builtin_modules_are_neither_loaded_nor_unloaded(kernel, persist_file, capsys):
    kernel.builtin = {"nf_conntrack"}
    present = run(capsys, name=IPVS, persist_file=str(persist_file))
    assert present["loaded"] == IPVS[:4] and present["modules"]["nf_conntrack"] == "builtin"
    absent = run(capsys, name=IPVS, state="absent", unload=True, persist_file=str(persist_file))
    assert absent["unloaded"] == list(reversed(IPVS[:4]))
    assert absent["modules"] == {"ip_vs": "loadable", "ip_vs_rr": "loadable", "ip_vs_wrr": "loadable", "ip_vs_sh": "loadable", "nf_conntrack": "builtin"}


def test_absent_removes_the_file_and_unloads_in_reverse_order(kernel, persist_file, capsys):
    run(capsys, name=IPVS[:4], persist_file=str(persist_file))
    kernel.calls.clear()
    result = run(capsys, name=IPVS[:4], state="absent", unload=True, persist_file=str(persist_file))
    assert result["changed"] is True and result["persist_changed"] is True
    assert result["unloaded"] == ["ip_vs_sh", "ip_vs_wrr", "ip_vs_rr", "ip_vs"]
    assert kernel.modprobe_calls() == [["--remove", "--all", "ip_vs_sh", "ip_vs_wrr", "ip_vs_rr", "ip_vs"]]
    assert not persist_file.exists()
    again = run(capsys, name=IPVS[:4], state="absent", unload=True, persist_file=str(persist_file))
    assert again["changed"] is False


def test_absent_in_check_mode_keeps_the_file_and_the_modules(kernel, persist_file, capsys):
    run(capsys, name=IPVS[:4], persist_file=str(persist_file))
    before = snapshot(persist_file)
    result = run(capsys, check=True, name=IPVS[:4], state="absent", unload=True, persist_file=str(persist_file))
    assert result["changed"] is True and result["unloaded"] == ["ip_vs_sh", "ip_vs_wrr", "ip_vs_rr", "ip_vs"]
    assert kernel.loaded == set(IPVS[:4])
    assert snapshot(persist_file) == before


@pytest.mark.parametrize(("name", "message"), [([], "name is empty"), (["ip_vs", "ip vs;rm"], "not a kernel module name: ip vs;rm")])
def test_bad_names_fail_with_a_clear_message(kernel, persist_file, capsys, name, message):
    result = run(capsys, name=name, persist_file=str(persist_file))
    assert result["failed"] is True and result["msg"].startswith(message)
    assert not persist_file.parent.exists()

"""ipvs_node_info run through AnsibleModule against a stand-in kernel: the return shape the role reads."""

from __future__ import annotations

import json
import os
import time

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.rkeops.ipvs.plugins.modules import ipvs_node_info, kernel_modules

RELEASE = "6.1.0-28-amd64"
IPVS = ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"]


class Node:
    """The node as the module sees it: kernel modules, modinfo's answers, commands on the PATH, the OS."""

    def __init__(self):
        self.release = RELEASE
        self.tree = True
        self.loaded = {"nf_conntrack"}
        self.builtin = set()
        self.modinfo = set(IPVS) | {"nf_conntrack"}
        self.commands = {"ipset": "/usr/sbin/ipset"}
        self.os_release = ("debian", "")  # ID, ID_LIKE
        self.calls = []

    # ansible.module_utils.distro
    def id(self):
        return self.os_release[0]

    def like(self):
        return self.os_release[1]

    def run_command(self, module, args, **kwargs):
        assert module.run_command_environ_update == {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
        self.calls.append(args)
        name = args[-1]
        return (0, name + "\n", "") if os.path.basename(args[0]) == "modinfo" and name in self.modinfo else (1, "", "not found\n")

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/sbin/modinfo" if name == "modinfo" else self.commands.get(name)


@pytest.fixture
def node(monkeypatch):
    node = Node()

    def run_command(module, args, **kwargs):  # AnsibleModule.run_command, answered by the stand-in node
        return node.run_command(module, args, **kwargs)

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda module, name, required=False, opt_dirs=None: node.get_bin_path(name))
    for target in (ipvs_node_info, kernel_modules):
        monkeypatch.setattr(target, "running_kernel_modules", lambda release: (set(node.loaded), set(node.builtin)))
    monkeypatch.setattr(os, "uname", lambda: ("Linux", "node1", node.release, "#1 SMP", "x86_64"))
    isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda path: (node.tree and path == "/lib/modules/" + node.release) or isdir(path))
    monkeypatch.setattr(ipvs_node_info, "distro", node)
    monkeypatch.setattr(ipvs_node_info, "get_distribution", lambda: node.id().capitalize())
    monkeypatch.setattr(ipvs_node_info, "get_distribution_version", lambda: "12.11")
    monkeypatch.setattr(ipvs_node_info, "container_runtime", lambda: "")
    monkeypatch.setattr(ipvs_node_info, "other_module_trees", lambda release: ["6.1.0-30-amd64"])
    monkeypatch.setattr(ipvs_node_info, "APT_LISTS", "/nonexistent/apt/lists")
    # Module warnings are kept process-wide; each test starts without any (a dict from ansible-core 2.19, a list before).
    monkeypatch.setattr(ansible_warnings, "_global_warnings", type(ansible_warnings._global_warnings)())
    return node


def run(capsys, module=ipvs_node_info, check=False, **params):
    args = dict(params, _ansible_check_mode=check)
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exited.value.code
    return result


def test_return_shape(node, tmp_path, capsys):
    result = run(capsys, persist_file=str(tmp_path / "none.conf"), warn_kernel_below="")
    result.pop("_rc")
    result.pop("invocation", None)
    assert result == {
        "changed": False,
        "os": {"family": "Debian", "distribution": "Debian", "version": "12.11", "container": "", "apt_lists": {"indexes": 0, "age": -1}},
        "kernel": {
            "release": RELEASE,
            "version": "6.1.0",
            "proc_modules": os.path.exists("/proc/modules"),
            "modules_dir": "/lib/modules/" + RELEASE,
            "modules_dir_exists": True,
            "other_module_trees": ["6.1.0-30-amd64"],
            "reboot_required": os.path.exists("/run/reboot-required") or os.path.exists("/var/run/reboot-required"),
        },
        "modules": {"ip_vs": "loadable", "ip_vs_rr": "loadable", "ip_vs_wrr": "loadable", "ip_vs_sh": "loadable", "nf_conntrack": "loaded"},
        "conntrack": {"module": "nf_conntrack", "probed": True},
        "commands": {"ipset": "/usr/sbin/ipset", "ipvsadm": None},
        "persisted": {"exists": False, "modules": [], "notes": {}},
    }


def test_modules_the_kernel_lacks_are_missing_in_the_order_asked(node, tmp_path, capsys):
    node.modinfo = {"nf_conntrack"}
    node.loaded = set()
    result = run(capsys, name=IPVS + ["ip_vs_lc"], persist_file=str(tmp_path / "none.conf"))
    assert list(result["modules"].items()) == [(name, "missing") for name in IPVS + ["ip_vs_lc"]] + [("nf_conntrack", "loadable")]


def test_conntrack_probed_on_an_older_kernel(node, tmp_path, capsys):
    node.release = "4.15.0-213-generic"
    node.loaded = set()
    node.modinfo |= {"nf_conntrack_ipv4"}
    result = run(capsys, persist_file=str(tmp_path / "none.conf"), warn_kernel_below="")
    assert result["conntrack"] == {"module": "nf_conntrack_ipv4", "probed": True}
    assert result["modules"]["nf_conntrack_ipv4"] == "loadable"


def test_conntrack_not_probed_without_a_module_tree(node, tmp_path, capsys):
    node.tree = False
    node.loaded = set()
    result = run(capsys, persist_file=str(tmp_path / "none.conf"))
    assert result["conntrack"] == {"module": "nf_conntrack", "probed": False}
    assert result["kernel"]["modules_dir_exists"] is False
    assert set(result["modules"].values()) == {"missing"}
    assert node.calls == []  # no module tree: no modinfo


def test_reads_back_what_kernel_modules_persisted(node, tmp_path, capsys):
    persist_file = str(tmp_path / "rkeops-ipvs.conf")
    notes = {"installed-packages": ["ipset", "ipvsadm"]}
    written = run(capsys, module=kernel_modules, name=IPVS + ["nf_conntrack"], load=False, persist_file=persist_file, notes=notes)
    assert written["persist_changed"] is True
    result = run(capsys, persist_file=persist_file)
    assert result["persisted"] == {"exists": True, "modules": IPVS + ["nf_conntrack"], "notes": notes}


@pytest.mark.parametrize(("release", "warned"), [("5.4.0-150-generic", True), ("5.9.0-1-amd64", False), ("6.12.38+deb13-amd64", False)])
def test_warns_on_kernels_older_than_the_limit(node, tmp_path, capsys, release, warned):
    node.release = release
    result = run(capsys, persist_file=str(tmp_path / "none.conf"), warn_kernel_below="5.9")
    # ansible-core 2.19 returns warnings as structured summaries; older cores as strings.
    warnings = [warning if isinstance(warning, str) else warning["event"]["msg"] for warning in result.get("warnings", [])]
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].startswith("node1 runs kernel %s, older than 5.9: IPVS in kernels before 5.9" % release)


def test_a_limit_that_is_not_a_version_fails_clearly(node, tmp_path, capsys):
    result = run(capsys, persist_file=str(tmp_path / "none.conf"), warn_kernel_below="5.9-rc1")
    assert result["failed"] is True
    assert result["msg"] == "warn_kernel_below='5.9-rc1' is not a version: give dotted numbers such as 5.9, or an empty string"


@pytest.mark.parametrize(
    ("distro_id", "like", "family"),
    [
        ("debian", "", "Debian"),
        ("ubuntu", "debian", "Debian"),
        ("rocky", "rhel centos fedora", "RedHat"),
        ("almalinux", "rhel centos fedora", "RedHat"),
        ("opensuse-leap", "suse opensuse", "Suse"),
        ("sles", "", "Suse"),
        ("linuxmint", "ubuntu debian", "Debian"),
        ("arch", "", ""),
    ],
)
def test_os_family_from_id_then_id_like(distro_id, like, family):
    assert ipvs_node_info.os_family(distro_id, like) == family


def test_os_family_is_reported_with_ansible_cores_distribution(node, tmp_path, capsys):
    node.os_release = ("ubuntu", "debian")
    result = run(capsys, persist_file=str(tmp_path / "none.conf"))
    assert result["os"]["family"] == "Debian"
    assert result["os"]["distribution"] == "Ubuntu"


# --- apt's package lists, judged by what they hold -------------------------------------------------------------

NOW = 1_800_000_000
DAY = 86400


def lists_folder(tmp_path, files, folder_age):
    """An apt lists folder with {name: (size, age in seconds)}, the folder itself written folder_age seconds ago."""
    folder = tmp_path / "lists"
    (folder / "partial").mkdir(parents=True)
    for name, (size, age) in files.items():
        path = folder / name
        path.write_bytes(b"x" * size)
        os.utime(path, (NOW - age, NOW - age))
    os.utime(folder, (NOW - folder_age, NOW - folder_age))
    return str(folder)


MIRROR = "deb.debian.org_debian_dists_bookworm"


@pytest.mark.parametrize(
    ("files", "folder_age", "expected"),
    [
        # mmdebstrap's default, container and cloud images: a fresh folder, nothing apt-get install could find.
        ({"lock": (0, 60)}, 60, {"indexes": 0, "age": -1}),
        # Release files alone hold no package.
        ({MIRROR + "_InRelease": (150_000, 60), MIRROR + "_main_i18n_Translation-en": (9, 60), "lock": (0, 60)}, 60, {"indexes": 0, "age": -1}),
        # An empty index holds no package either.
        ({MIRROR + "_main_binary-amd64_Packages": (0, 60)}, 60, {"indexes": 0, "age": -1}),
        # Indexes kept compressed or not, every compressor apt knows; the newest counts.
        (
            {
                MIRROR + "_main_binary-amd64_Packages.lz4": (18_000_000, 140 * DAY),
                MIRROR + "-updates_main_binary-amd64_Packages.xz": (11_000, 2 * DAY),
                MIRROR + "-security_main_binary-amd64_Packages.gz": (770_000, 3 * DAY),
                "example.org_repo_._Packages": (500, 9 * DAY),
                "x_Packages.zst": (9, 9 * DAY),
                "x_Packages.bz2": (9, 9 * DAY),
                "x_Packages.lzma": (9, 9 * DAY),
                "x_Packages.diff_Index": (9, 1),
            },
            30 * DAY,
            {"indexes": 7, "age": 2 * DAY},
        ),
        # apt gives a file the mirror's Last-Modified time: right after an update, bookworm's main index can be
        # months old; the folder, into which apt just moved it, says when apt wrote it.
        ({MIRROR + "_main_binary-amd64_Packages.lz4": (18_000_000, 140 * DAY)}, 600, {"indexes": 1, "age": 600}),
    ],
    ids=["empty", "release-files-only", "empty-index", "compressed-indexes", "mirror-time"],
)
def test_apt_lists_are_judged_by_their_indexes(tmp_path, files, folder_age, expected):
    assert ipvs_node_info.apt_lists(lists_folder(tmp_path, files, folder_age), now=NOW) == expected


def test_apt_lists_without_apt(tmp_path):
    assert ipvs_node_info.apt_lists(str(tmp_path / "missing"), now=NOW) == {"indexes": 0, "age": -1}


def test_apt_lists_reported_by_the_module(node, tmp_path, capsys, monkeypatch):
    index = tmp_path / "lists" / (MIRROR + "_main_binary-amd64_Packages")
    index.parent.mkdir()
    index.write_text("Package: ipset\n")
    written = time.time() - 7200
    os.utime(index, (written, written))
    os.utime(index.parent, (written, written))
    monkeypatch.setattr(ipvs_node_info, "APT_LISTS", str(index.parent))
    result = run(capsys, persist_file=str(tmp_path / "none.conf"))
    assert result["os"]["apt_lists"]["indexes"] == 1
    assert 7200 <= result["os"]["apt_lists"]["age"] <= 7260

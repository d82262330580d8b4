"""The prereqs role's preflight (tasks/preflight.yml) run by ansible-playbook on localhost.

What it proves, on whichever ansible-core runs the tests (2.16, 2.19 and 2.21 with make units-oldest, units and
units-newest):

- a node whose Python cannot run the modules (Python 2.7 only, or no Python at all) is stopped at the first module
  execution, with a message that says which Python Ansible used, where python3 is or how to install it, and to set
  ansible_python_interpreter; the raw probe that explains it runs only after that failure;
- a node with Python 3.6 passes the node reading on ansible-core 2.16, and on later cores gets the core's own
  refusal plus the way out (ansible-core 2.16 for that node);
- the kernel checks, fed the node report of other kernels and OS families through a stand-in ipvs_node_info (the
  real role, the real vars files): 3.10 (EL 7) passes with the conn_reuse_mode warning, 2.6.32 is refused, 4.19 gets
  no such warning, and the missing-module message names each family's package. No EL, SUSE or Ubuntu kernel is
  reachable here: these families are exercised by their variables only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.release import __version__ as ANSIBLE_CORE

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402

PYENV = Path(os.environ.get("PYENV_VERSIONS", Path.home() / ".pyenv" / "versions"))
CORE = tuple(int(part) for part in ANSIBLE_CORE.split(".")[:2])


def pyenv_python(version: str):
    """The newest pyenv build of Python <version> on this machine, or None."""
    found = sorted(PYENV.glob("%s.*/bin/python%s" % (version, version)), key=lambda path: [int(n) for n in re.findall(r"\d+", path.parts[-3])])
    return found[-1] if found else None


PYTHON27 = pyenv_python("2.7")
PYTHON36 = pyenv_python("3.6")
needs_python27 = pytest.mark.skipif(PYTHON27 is None, reason="no Python 2.7 under %s" % PYENV)
needs_python36 = pytest.mark.skipif(PYTHON36 is None, reason="no Python 3.6 under %s" % PYENV)

PLAY = """\
- name: The prereqs role's preflight alone
  hosts: node
  gather_facts: false
  tasks:
    - name: Run the preflight
      ansible.builtin.include_role:
        name: rkeops.ipvs.prereqs
        tasks_from: preflight
"""


def playbook(tmp_path: Path, interpreter, extra_vars=None, path=None, collections=None):
    """ansible-playbook of the preflight against this machine as `node`, with the given Python as the node's."""
    (tmp_path / "site.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps(extra_vars or {}))
    return ansible_cli.run(
        "-i",
        "node,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % interpreter,
        "-e",
        "@vars.json",
        "site.yml",
        env=None if path is None else {"PATH": path},
        # The result as YAML: messages unescaped, as an operator reads them (2.16's default callback prints JSON);
        # words() undoes its line folds.
        result_format="yaml",
        # The checkout's collection, or the one with a stand-in module, whatever the calling environment says.
        collections=collections or ansible_cli.COLLECTIONS,
        cwd=tmp_path,
        # A guard against a hang, not a time limit: make test runs this lane niced beside emulated VMs (tests/lanes.py).
        timeout=900,
    )


def words(text: str) -> str:
    """The text as an operator reads it: the YAML callback's line folds and quote doubling undone."""
    return " ".join(text.split()).replace("''", "'")


def ran(done, task: str) -> bool:
    return ("TASK [rkeops.ipvs.prereqs : %s]" % task) in done.stdout


PROBE = "Look at the node's Pythons without Python (the module failed)"
STOP = "Stop the node, saying what its Python lacks"


@pytest.fixture(scope="module")
def controller_ok():
    try:
        ansible_cli.executable()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


# --- the node's Python ----------------------------------------------------------------------------------------


def test_a_good_python_reads_the_node_and_never_probes(tmp_path, controller_ok):
    done = playbook(tmp_path, sys.executable, {"prereqs_manage_kernel": False})
    assert done.returncode == 0, done.stdout[-3000:]
    assert ran(done, "Read the node's OS, kernel, modules and packages")
    assert not ran(done, PROBE)
    assert not ran(done, STOP)


@needs_python27
def test_a_python27_node_is_stopped_with_the_python3_it_has(tmp_path, controller_ok):
    done = playbook(tmp_path, PYTHON27, {"prereqs_manage_kernel": False})
    assert done.returncode != 0
    out = words(done.stdout)
    assert ran(done, PROBE) and ran(done, STOP)
    python3 = shutil.which("python3")
    version = subprocess.run([python3, "-V"], capture_output=True, text=True, check=True).stdout.split()[1]
    assert "Ansible runs the modules with %s, Python 2.7." % PYTHON27 in out
    assert "the modules of rkeops.ipvs need Python 3.6 or later." in out
    assert "The node has %s (Python %s): set ansible_python_interpreter=%s for this host, then run again." % (python3, version, python3) in out
    assert "Nothing was changed on the node." in out


@needs_python27
def test_a_python27_found_by_interpreter_discovery_is_named(tmp_path, controller_ok):
    # As on EL 7 without ansible_python_interpreter: discovery settles on Python 2.7 (here the only candidate).
    done = playbook(tmp_path, "auto_silent", {"prereqs_manage_kernel": False, "ansible_interpreter_python_fallback": [str(PYTHON27)]})
    assert done.returncode != 0
    assert "Ansible runs the modules with %s, Python 2.7." % PYTHON27 in words(done.stdout)


@needs_python27
def test_a_python27_node_without_python3_is_told_how_to_install_it(tmp_path, controller_ok):
    # A PATH without any python3: the probe finds none (ansible-playbook and the interpreter are given by path).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sleep").symlink_to(shutil.which("sleep"))
    done = playbook(tmp_path, PYTHON27, {"prereqs_manage_kernel": False}, path=str(bin_dir))
    assert done.returncode != 0
    out = words(done.stdout)
    assert "Ansible runs the modules with %s, Python 2.7." % PYTHON27 in out
    assert "The node has no python3. Install Python 3.6 or later (EL 7: yum install python3;" in out
    assert "set ansible_python_interpreter=/usr/bin/python3 for this host, then run again." in out


def test_a_node_without_the_python_ansible_uses_is_told_so(tmp_path, controller_ok):
    done = playbook(tmp_path, "/nonexistent/python3", {"prereqs_manage_kernel": False})
    assert done.returncode != 0
    out = words(done.stdout)
    assert "The modules of rkeops.ipvs could not start on the node: its Python, /nonexistent/python3, does not run (" in out
    assert "not found" in out
    assert "ansible_python_interpreter=" in out


@needs_python36
def test_python36_runs_the_node_module_on_2_16_and_is_explained_on_later_cores(tmp_path, controller_ok):
    done = playbook(tmp_path, PYTHON36, {"prereqs_manage_kernel": False})
    if CORE < (2, 17):
        assert done.returncode == 0, done.stdout[-3000:]
        assert not ran(done, PROBE)
    else:
        assert done.returncode != 0
        assert ran(done, STOP)
        out = words(done.stdout)
        assert "If Python 3.6.%s is too old for ansible-core %s, run this node with ansible-core 2.16" % (PYTHON36.parts[-3].split(".")[2], ANSIBLE_CORE) in out


# --- the kernel, through a stand-in ipvs_node_info ------------------------------------------------------------

STAND_IN = """\
#!/usr/bin/python
# STAND-IN for rkeops.ipvs.ipvs_node_info in tests/unit/roles/test_prereqs_preflight.py: prints a prepared report.
import json
print(json.dumps(%s))
"""


def report(release: str, family: str, distribution: str, missing=()):
    version = ".".join(re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release).groups("0"))
    modules = {name: "missing" if name in missing else "loadable" for name in ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")}
    return {
        "changed": False,
        "os": {"family": family, "distribution": distribution, "version": "", "container": "", "apt_lists_age": 0, "apt_lists": {"indexes": 3, "age": 0}},
        "kernel": {
            "release": release,
            "version": version,
            "proc_modules": True,
            "modules_dir": "/lib/modules/%s" % release,
            "modules_dir_exists": True,
            "other_module_trees": [],
            "reboot_required": False,
        },
        "modules": modules,
        "conntrack": {"module": "nf_conntrack", "probed": True},
        "commands": {"ipset": "/usr/sbin/ipset", "ipvsadm": "/usr/sbin/ipvsadm"},
        "persisted": {"exists": False, "modules": [], "notes": {}},
    }


def collection_with_stand_in(tmp_path: Path, node_report: dict) -> Path:
    """ansible_collections/rkeops/ipvs whose roles, meta and module_utils are this checkout's, and whose
    ipvs_node_info is the stand-in."""
    base = tmp_path / "collections"
    collection = base / "ansible_collections" / "rkeops" / "ipvs"
    (collection / "plugins" / "modules").mkdir(parents=True)
    for name in ("roles", "meta", "galaxy.yml"):
        (collection / name).symlink_to(ROOT / name)
    (collection / "plugins" / "module_utils").symlink_to(ROOT / "plugins" / "module_utils")
    (collection / "plugins" / "modules" / "ipvs_node_info.py").write_text(STAND_IN % repr(node_report))
    return base


def preflight_on(tmp_path: Path, node_report: dict, extra_vars=None):
    return playbook(tmp_path, sys.executable, extra_vars, collections=collection_with_stand_in(tmp_path, node_report))


WARNING = "Warn that kube-proxy cannot set conn_reuse_mode on this kernel"


def test_el7_kernel_3_10_passes_with_the_conn_reuse_mode_warning(tmp_path, controller_ok):
    done = preflight_on(tmp_path, report("3.10.0-1160.el7.x86_64", "RedHat", "CentOS"))
    assert done.returncode == 0, done.stdout[-3000:]
    out = words(done.stdout)
    assert "[WARNING] Kernel 3.10.0-1160.el7.x86_64 is older than 4.1: it has no net.ipv4.vs.conn_reuse_mode." in out
    assert "Can't set sysctl, kernel version doesn't satisfy minimum version requirements" in out
    assert "(sysctl net/ipv4/vs/conn_reuse_mode, minimumKernelVersion 4.1)" in out
    assert "goes to the same backend as the old one" in out


def test_a_kernel_from_4_1_gets_no_conn_reuse_mode_warning(tmp_path, controller_ok):
    done = preflight_on(tmp_path, report("4.19.0-27-amd64", "Debian", "Debian"))
    assert done.returncode == 0, done.stdout[-3000:]
    assert ran(done, "Check the kernel version")
    assert "skipping: [node]" in done.stdout.split("TASK [rkeops.ipvs.prereqs : %s]" % WARNING, 1)[1].split("TASK [", 1)[0]
    assert "conn_reuse_mode." not in words(done.stdout)


def test_a_kernel_older_than_the_minimum_is_refused(tmp_path, controller_ok):
    done = preflight_on(tmp_path, report("2.6.32-754.el6.x86_64", "RedHat", "CentOS"))
    assert done.returncode != 0
    out = words(done.stdout)
    assert "Kernel 2.6.32-754.el6.x86_64 is older than 3.10 (prereqs_kernel_min_version), the oldest kernel Kubernetes supports on a node" in out


def test_the_minimum_and_the_warning_are_variables(tmp_path, controller_ok):
    done = preflight_on(
        tmp_path, report("2.6.32-754.el6.x86_64", "RedHat", "CentOS"), {"prereqs_kernel_min_version": "", "prereqs_kernel_conn_reuse_min_version": ""}
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "conn_reuse_mode." not in words(done.stdout)


@pytest.mark.parametrize(
    ("family", "distribution", "release", "package"),
    [
        ("RedHat", "RedHat", "5.14.0-427.el9.x86_64", "kernel-modules-extra-5.14.0-427.el9.x86_64"),
        # EL 7 has no modules subpackage: the kernel package carries them (roles/prereqs/vars/RedHat.yml).
        ("RedHat", "CentOS", "3.10.0-1160.119.1.el7.x86_64", "kernel-3.10.0-1160.119.1.el7.x86_64 (on EL 7 the kernel package itself"),
        ("Suse", "openSUSE Leap", "5.14.21-150500.55-default", "kernel-default (or kernel-default-extra) for 5.14.21-150500.55-default"),
        ("Debian", "Ubuntu", "5.15.0-1051-aws", "linux-modules-extra-5.15.0-1051-aws"),
        ("Debian", "Debian", "6.1.0-28-amd64", "linux-image-6.1.0-28-amd64"),
    ],
    ids=["el9", "el7", "suse", "ubuntu", "debian"],
)
def test_each_family_names_its_modules_package(tmp_path, controller_ok, family, distribution, release, package):
    done = preflight_on(tmp_path, report(release, family, distribution, missing=("ip_vs_sh",)))
    assert done.returncode != 0
    out = words(done.stdout)
    assert "Kernel %s lacks the module(s) ip_vs_sh (neither loadable nor built in). They usually come with %s" % (release, package) in out
    assert "Nothing was changed." in out


def test_an_unsupported_family_is_refused_by_name(tmp_path, controller_ok):
    done = preflight_on(tmp_path, report("6.6.0", "Alpine", "Alpine"))
    assert done.returncode != 0
    assert "OS family Alpine" in words(done.stdout)

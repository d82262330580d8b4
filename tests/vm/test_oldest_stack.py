"""The oldest stack the collection supports, really run: ansible-core 2.16 against a node whose Python is 3.6.

ansible-core 2.16 runs the prereqs role and kube_proxy_info against a lab VM whose Ansible interpreter is a Python 3.6
(not the image's own). The unit tests and ansible-test sanity only compile the modules for 3.6; here they run there.

- The controller is the oldest toolset, requirements/oldest.txt (ansible-core 2.16 on this machine's python3): run
  this file with that virtual environment's pytest (`make oldest-stack` does), and its ansible-playbook is used.
- The node is a bookworm lab VM (kernel 6.1, its own python3 is 3.11). No Debian release the mirror serves has a
  Python 3.6, so this machine's pyenv build of 3.6 is copied to the VM at the same path (the build finds its
  libpython through its RPATH, which names that path) and set as ansible_python_interpreter: an explicit interpreter
  turns Ansible's discovery off, which would otherwise pick /usr/bin/python3. The path is under /root, so every task
  runs with become, as the collection's own plays do.
- Before anything runs, `ldd` on the VM checks the interpreter, its libpython and the extension modules that
  Ansible's module wrapper and the collection's modules import; the other extension modules of the build (curses,
  tkinter, dbm...) are not shipped.
- kube-proxy is the lab's stand-in (tests/stand-ins/kube-proxy), deployed by the rke stand-in from a one-node
  cluster.yml as the end-to-end tests do (tests/lab/labcluster.py). kube_proxy_info first reports iptables; the
  prereqs role runs; cluster.yml then asks for ipvs, rke up recreates kube-proxy, and kube_proxy_info reports ipvs.
- The proof that 3.6 ran the modules is the setup module's own report of its interpreter (ansible_facts.python)
  and the version of the core that ran the play (ansible_version), both written by the play itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ansible.release import __version__ as ANSIBLE_CORE

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402
import lab  # noqa: E402
from labcluster import SUCCESS, Cluster, write_cluster_yml  # noqa: E402

PYENV = Path(os.environ.get("PYENV_VERSIONS", Path.home() / ".pyenv" / "versions"))
SUITE = "bookworm"
# What the play must find in the node's Python: ansible_python_interpreter set, not discovered.
WANTED = (3, 6)
# The extension modules (lib-dynload) that Ansible's module wrapper (AnsiballZ: zipfile, base64, json),
# AnsibleModule (subprocess, select, selectors, syslog, grp, pwd, hashlib, datetime) and the collection's modules
# (ipaddress, socket, http.client for /proxyMode) import. The build's other extension modules are not shipped.
NEEDED = (
    "_bisect",
    "_datetime",
    "_json",
    "_md5",
    "_posixsubprocess",
    "_random",
    "_sha1",
    "_sha256",
    "_sha512",
    "_socket",
    "_struct",
    "binascii",
    "fcntl",
    "grp",
    "math",
    "select",
    "syslog",
    "zlib",
)
# Left out of the copy: tests, GUI and development parts (a sixth of the size, and tkinter's libraries are not on
# the VM). _ssl stays in (hashlib uses OpenSSL when it loads), though the modules make no TLS connection.
EXCLUDE = ("test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "include", "share", "config-3.6m*", "*.a")

PLAY_BEFORE = """\
- name: ansible-core 2.16 and a Python 3.6 node, before the role
  hosts: node1
  become: true
  gather_facts: false
  tasks:
    - name: Read the interpreter the modules run with (the setup module's own report)
      ansible.builtin.setup:
        gather_subset: [min]

    - name: Read kube-proxy as rke first deployed it
      rkeops.ipvs.kube_proxy_info:
        expected_mode: iptables
        service_cluster_ip_range: 10.43.0.0/16
      register: __before
      until: __before.ok
      retries: 30
      delay: 5

    - name: Prepare the node for IPVS
      ansible.builtin.import_role:
        name: rkeops.ipvs.prereqs

    - name: Write what the test checks
      ansible.builtin.copy:
        content: "{{ {'core': ansible_version.full, 'python': ansible_facts.python, 'before': __before,
                      'report': prereqs_result} | to_nice_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
      delegate_to: localhost
      become: false
"""

PLAY_AFTER = """\
- name: ansible-core 2.16 and a Python 3.6 node, after kube-proxy restarted in ipvs mode
  hosts: node1
  become: true
  gather_facts: false
  tasks:
    - name: Read the interpreter the modules run with
      ansible.builtin.setup:
        gather_subset: [min]

    - name: Wait until kube-proxy runs in IPVS mode
      rkeops.ipvs.kube_proxy_info:
        expected_mode: ipvs
        service_cluster_ip_range: 10.43.0.0/16
        # The switch alone, as here, leaves iptables mode's rules: enable's leftovers step removes them;
        # this test is about the mode seen from a Python 3.6 node, so they are not judged.
        leftovers: skip
      register: __after
      until: __after.ok
      retries: 30
      delay: 5

    - name: Write what the test checks
      ansible.builtin.copy:
        content: "{{ {'core': ansible_version.full, 'python': ansible_facts.python, 'after': __after} | to_nice_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
      delegate_to: localhost
      become: false
"""


def pyenv_python36():
    """This machine's newest pyenv build of Python 3.6: its prefix and its interpreter, or (None, None)."""
    found = sorted(PYENV.glob("3.6.*/bin/python3.6"), key=lambda path: [int(n) for n in re.findall(r"\d+", path.parts[-3])])
    return (found[-1].parents[1], found[-1]) if found else (None, None)


PREFIX36, PYTHON36 = pyenv_python36()
TIMES: dict[str, float] = {}
# Each play's result, or its failure: pytest runs a module-scoped fixture that failed again for every test that
# uses it, and a play here takes minutes under emulation.
PLAYS: dict[str, object] = {}


def ship_python(cluster: Cluster, prefix: Path) -> None:
    """Copy the pyenv build to the VM at the same path (tar over the VM's SSH, as root there)."""
    vm = cluster.vms["node1"]
    excludes = [f"--exclude={pattern}" for pattern in EXCLUDE]
    pack = subprocess.Popen(["tar", "-C", "/", "-cf", "-", *excludes, str(prefix).lstrip("/")], stdout=subprocess.PIPE)
    unpack = subprocess.run(lab.ssh_base(Path(vm["identity_file"]), vm["port"]) + ["sudo tar -C / -xf -"], stdin=pack.stdout, capture_output=True, check=False)
    pack.stdout.close()
    assert pack.wait() == 0 and unpack.returncode == 0, unpack.stderr.decode(errors="replace")


def playbook(cluster: Cluster, text: str, name: str) -> dict:
    """The result of the play `name`, run once (run_playbook); its failure again, without a second run."""
    if name not in PLAYS:
        try:
            PLAYS[name] = run_playbook(cluster, text, name)
        except AssertionError as failure:
            PLAYS[name] = failure
    if isinstance(PLAYS[name], AssertionError):
        pytest.fail(f"the {name} play failed (log: {cluster.work / name}.log):\n{PLAYS[name]}", pytrace=False)
    return PLAYS[name]


def run_playbook(cluster: Cluster, text: str, name: str) -> dict:
    """Run `text` with this virtual environment's ansible-playbook (2.16) against the VM; the play's result file."""
    vm = cluster.vms["node1"]
    (cluster.work / f"{name}.yml").write_text(text)
    inventory = {
        "all": {
            "hosts": {
                "node1": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": vm["port"],
                    "ansible_user": lab.LAB_USER,
                    "ansible_ssh_private_key_file": vm["identity_file"],
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                    "ansible_python_interpreter": str(PYTHON36),
                }
            }
        }
    }
    (cluster.work / "inventory.json").write_text(json.dumps(inventory))
    result = cluster.work / f"{name}.json"
    result.unlink(missing_ok=True)
    started = time.monotonic()
    done = ansible_cli.run(
        "-i",
        "inventory.json",
        "-e",
        f"result_file={result}",
        f"{name}.yml",
        # The connection and become timeout (10 s by default, 60 s in ansible_cli.ENV): under software emulation,
        # with other VMs on the same cores, sudo on the VM took longer than 10 s to answer; this run allows 120 s.
        env={"ANSIBLE_TIMEOUT": "120"},
        cwd=cluster.work,
        timeout=1800,
    )
    TIMES[name] = time.monotonic() - started
    (cluster.work / f"{name}.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(result.read_text())


@pytest.fixture(scope="module")
def node():
    """A one-node lab cluster on a bookworm VM with this machine's Python 3.6 copied in, kube-proxy deployed in
    iptables mode by the rke stand-in."""
    if PYTHON36 is None:
        pytest.fail(f"no Python 3.6 under {PYENV} (pyenv install 3.6.15, or set PYENV_VERSIONS)")
    if not ANSIBLE_CORE.startswith("2.16."):
        pytest.fail(f"this test is ansible-core 2.16's, and runs under {ANSIBLE_CORE}: run `make oldest-stack`")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rkeops-oldest-") as tmp:
        work = Path(tmp)
        vm = lab.boot(lab.build_image(SUITE), work / "vms", "node1", 1024)
        try:
            # Generous: under software emulation, with other VMs on the same cores, a boot took over 5 minutes.
            lab.wait_ssh(vm, 900)
            cluster = Cluster(work, [vm])
            TIMES["boot"] = time.monotonic() - started
            ship_python(cluster, PREFIX36)
            cluster.ssh("node1", "sudo systemctl start docker")
            write_cluster_yml(cluster)
            first = cluster.rke_up()
            assert first.returncode == 0 and SUCCESS in first.stdout, first.stdout + first.stderr
            TIMES["setup"] = time.monotonic() - started
            yield cluster
        finally:
            lab.stop(work / "vms", "node1")
            print("\noldest stack: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in TIMES.items()))


def test_the_python_build_runs_on_the_node(node):
    """ldd on the VM: nothing the interpreter and the extension modules Ansible imports need is missing."""
    lib_dynload = PREFIX36 / "lib" / "python3.6" / "lib-dynload"
    files = [str(PYTHON36), str(PREFIX36 / "lib" / "libpython3.6m.so.1.0")]
    files += [str(path) for name in NEEDED for path in lib_dynload.glob(f"{name}.cpython-36m-*.so")]
    assert len(files) == 2 + len(NEEDED), "the pyenv build lacks some of " + ", ".join(NEEDED)
    script = 'for f in %s; do sudo ldd $f | sed -n "s|^|$f: |; /not found/p"; done' % " ".join(files)
    assert node.ssh("node1", script).stdout == ""
    # The image's own python3 is not 3.6: the play below can only get 3.6 from the inventory.
    assert node.ssh("node1", "python3 -c 'import sys; print(sys.version_info[:2])'").stdout.strip() == "(3, 11)"
    assert node.ssh("node1", f"sudo {PYTHON36} -c 'import sys; print(sys.version_info[:2])'").stdout.strip() == "(3, 6)"


@pytest.fixture(scope="module")
def before(node):
    return playbook(node, PLAY_BEFORE, "before")


def test_ansible_core_2_16_ran_the_modules_with_python_3_6(before):
    assert before["core"].startswith("2.16.")
    assert before["python"]["executable"] == str(PYTHON36)
    assert tuple(before["python"]["version_info"][:2]) == WANTED


def test_kube_proxy_info_reports_iptables_before_the_switch(before):
    result = before["before"]
    assert result["ok"], result["problems"]
    assert result["log"]["mode"] == "iptables"
    assert result["proxy_mode"] == "iptables"


def test_the_prereqs_role_made_the_node_ready(node, before):
    assert before["report"]["ipvs_ready"]
    assert set(before["report"]["modules"].values()) == {"loaded"}
    host = node.host("node1")
    assert host.package("ipset").is_installed
    assert host.package("ipvsadm").is_installed
    assert "ip_vs " in host.file("/proc/modules").content_string


@pytest.fixture(scope="module")
def after(node, before):
    """cluster.yml asks for ipvs, the rke stand-in recreates kube-proxy, then the second play reads it."""
    text = node.cluster_yml.read_text()
    assert text.endswith("    extra_args:\n      v: 2\n")
    node.cluster_yml.write_text(text + "      proxy-mode: ipvs\n")
    up = node.rke_up()
    assert up.returncode == 0 and SUCCESS in up.stdout, up.stdout + up.stderr
    return playbook(node, PLAY_AFTER, "after")


def test_kube_proxy_info_reports_ipvs_after_the_switch(after):
    assert after["core"].startswith("2.16.")
    assert tuple(after["python"]["version_info"][:2]) == WANTED
    result = after["after"]
    assert result["ok"], result["problems"]
    assert result["log"]["mode"] == "ipvs"
    assert result["proxy_mode"] == "ipvs"
    assert result["service_listed"]

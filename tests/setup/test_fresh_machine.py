"""The README's installation and the developers' set-up work on a machine that has never seen the project.

A pristine Debian 12 container stands for a new machine of the project's kind: built locally like the Docker
scenario's image (mmdebstrap, then `docker import`: tests/lab/lab.py, flavour "fresh"), it has Python, make,
git, the ssh client, mkfs.ext4 and, bind-mounted from this machine, a docker client with no daemon behind it;
none of the lab's tools and no apt lists. A copy of the checkout runs, in one container:

- `make build`, the README's installation: it must leave the tarball, installable with ansible-galaxy, and install
  nothing but the pinned Python tools (and Python's venv module, when the interpreter lacks it): no lab tool;
- then `make setup`, the set-up step that `make test` starts with, which reuses the virtual environment that
  `make build` made. Afterwards every tool the lab and the tests call must be on PATH and run.

The container shares this machine's network (--network host) to reach the Debian mirror and PyPI, as a new
machine would; nothing else is contacted. Its docker client only ever talks to the absent daemon socket. It also
gets this machine's certificate bundle for pip (PIP_CERT), as a new machine of the kind has one: HTTPS to PyPI
goes through an egress proxy whose CA is in that bundle.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import lab  # noqa: E402

# Every command the Makefile, the lab and the test suites call on the host, with a command that proves it runs.
# This list is the test's own, kept apart from tests/lab/host-deps.sh on purpose: a tool that the set-up forgets
# to install fails here.
HOST_COMMANDS = {
    "qemu-system-x86_64": "qemu-system-x86_64 --version",
    "qemu-img": "qemu-img --version",
    "mmdebstrap": "mmdebstrap --version",
    "mkfs.ext4": "mkfs.ext4 -V",
    "dockerd": "dockerd --version",
    "docker": "docker --version",
    "ssh": "ssh -V",
    "ssh-keygen": "ssh-keygen -q -t ed25519 -N '' -f /tmp/probe-key",
    "git": "git --version",
    "shellcheck": "shellcheck --version",
    # The Vagrant scenario (molecule/vagrant): Vagrant, libvirt's daemons and client.
    "vagrant": "vagrant --version",
    "libvirtd": "libvirtd --version",
    "virtlogd": "virtlogd --version",
    "virsh": "virsh --version",
}
# Vagrant plugins the scenario needs, each with the probe that proves Vagrant loads it.
VAGRANT_PLUGINS = {"vagrant-libvirt": "vagrant plugin list | grep -q '^vagrant-libvirt '"}
# The pinned tools the virtual environment must provide.
VENV_COMMANDS = ("ansible-playbook", "ansible-test", "ansible-lint", "molecule", "pytest", "yamllint", "ruff", "antsibull-changelog")
# What `make build` must not install: the lab's tools, the heavy part of `make setup`.
LAB_COMMANDS = ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "dockerd", "vagrant", "libvirtd", "virsh", "shellcheck")

SCRIPT = r"""
set -u
echo "== before"
for tool in {host_tools}; do
  if command -v "$tool" >/dev/null; then echo "present $tool"; else echo "absent $tool"; fi
done
bash /src/tests/lab/docker-up.sh /tmp/dockerd.log 2>&1 && echo "docker-up rc=0" || echo "docker-up rc=$?"
echo "== build"
cp -a /src /root/rkeops && cd /root/rkeops
start=$(date +%s)
make build >/tmp/build.log 2>&1; rc=$?
echo "build rc=$rc in $(( $(date +%s) - start )) s"
[ "$rc" = 0 ] || tail -n 40 /tmp/build.log
grep '^host-deps: installing' /tmp/build.log
for tool in {lab_tools}; do
  if command -v "$tool" >/dev/null; then echo "present $tool"; else echo "absent $tool"; fi
done
# The README's installation of the tarball, offline (--no-deps), and the module documentation read from it.
venv="$(echo /root/.cache/rkeops-ipvs/venv-*)/bin"
for tarball in build/rkeops-ipvs-*.tar.gz; do echo "tarball $tarball"; done
"$venv/ansible-galaxy" collection install --no-deps -p /tmp/installed build/rkeops-ipvs-*.tar.gz >/dev/null 2>&1 \
  && ANSIBLE_COLLECTIONS_PATH=/tmp/installed "$venv/ansible-doc" -t module rkeops.ipvs.cluster_kubeproxy 2>&1 | grep -q services.kubeproxy \
  && echo "installed tarball documents cluster_kubeproxy"
echo "== setup"
start=$(date +%s)
make setup >/tmp/setup.log 2>&1; rc=$?
echo "setup rc=$rc in $(( $(date +%s) - start )) s"
[ "$rc" = 0 ] || tail -n 40 /tmp/setup.log
echo "== after"
{checks}
# The Makefile puts the virtual environment first on PATH; so does this check.
export PATH="$(echo /root/.cache/rkeops-ipvs/venv-*)/bin:$PATH"
for tool in {venv_tools}; do
  if out=$("$tool" --version 2>&1); then echo "runs $tool"; else echo "fails $tool: $out"; fi
done
"""


def copy_checkout(dest: Path) -> None:
    """The working tree's files as git sees them (tracked, and untracked ones it does not ignore)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout.split(
        b"\0"
    )
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())


def test_make_build_then_make_setup_on_a_fresh_machine(tmp_path):
    image = lab.docker_image("bookworm", "fresh")
    src = tmp_path / "src"
    copy_checkout(src)
    docker_client = shutil.which("docker")
    probes = {**HOST_COMMANDS, **VAGRANT_PLUGINS}
    checks = "\n".join(f'if ( {probe} ) >/dev/null 2>&1; then echo "runs {tool}"; else echo "fails {tool}"; fi' for tool, probe in probes.items())
    script = SCRIPT.format(host_tools=" ".join(HOST_COMMANDS), lab_tools=" ".join(LAB_COMMANDS), checks=checks, venv_tools=" ".join(VENV_COMMANDS))
    run = ["docker", "run", "--rm", "--network", "host", "-v", f"{src}:/src:ro", "-v", f"{docker_client}:/usr/local/bin/docker:ro"]
    run += ["-e", "DOCKER_HOST=unix:///nonexistent/docker.sock"]
    bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if bundle and Path(bundle).is_file():
        run += ["-v", f"{bundle}:/etc/rkeops-host-ca.crt:ro", "-e", "PIP_CERT=/etc/rkeops-host-ca.crt"]
    # The container's processes are dockerd's children, not this test's: they get this run's niceness (make test runs
    # the host lane niced, tests/lanes.py) from nice(1) inside, and from its CPU weight outside (lab.py).
    run += lab.docker_niceness_flags()
    done = subprocess.run(
        [*run, image, "nice", "-n", str(os.nice(0)), "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    # The steps' durations, for the budget of `make test` (shown with pytest -s).
    print("".join(re.findall(r"^(?:build|setup) rc=.*\n", out, re.MULTILINE)), end="")

    before, _sep, rest = out.partition("== build")
    build, _sep, rest = rest.partition("== setup")
    # The container really is a new machine: it has what one has, and none of the lab's tools.
    for tool in ("ssh", "mkfs.ext4", "docker", "git"):
        assert f"present {tool}\n" in before, out
    for tool in ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "dockerd", "vagrant", "libvirtd", "virsh"):
        assert f"absent {tool}\n" in before, out
    # A docker client without a daemon gets a message that names what is missing and what to do.
    assert "docker-up rc=1" in before, out
    assert re.search(r"no Docker daemon \(dockerd\) is installed.*make setup", before), out

    # make build: the tarball, installable and documented; Python's venv module at most from apt, no lab tool.
    assert re.search(r"^build rc=0 ", build, re.MULTILINE), out
    assert "tarball build/rkeops-ipvs-" in build and "installed tarball documents cluster_kubeproxy" in build, out
    for line in re.findall(r"^host-deps: installing (.*)$", build, re.MULTILINE):
        assert line.split() == ["python3-venv"], f"make build installed more than Python's venv module: {line}\n{out}"
    for tool in LAB_COMMANDS:
        assert f"absent {tool}\n" in build, f"make build installed {tool}, a lab tool:\n{out}"

    assert re.search(r"^setup rc=0 ", rest, re.MULTILINE), out
    for tool in {**HOST_COMMANDS, **VAGRANT_PLUGINS}:
        assert f"runs {tool}\n" in rest, f"{tool} missing or broken after make setup:\n{out}"
    for tool in VENV_COMMANDS:
        assert f"runs {tool}\n" in rest, f"{tool} missing from the virtual environment after make setup:\n{out}"


def test_every_tool_the_lab_needs_is_in_the_set_up_list():
    """lab.py and vagrant_box.py check their tools with need(...): each of them must be one the set-up installs."""
    listed = set(host_deps_groups())
    needed = set()
    for script in ("lab.py", "vagrant_box.py"):
        calls = re.findall(r"need\(([^)]*)\)", (ROOT / "tests/lab" / script).read_text())
        assert calls, f"no need(...) call found in {script}"
        for call in calls:
            needed.update(re.findall(r'"([^"]+)"', call))
    assert needed <= listed, f"tools lab.py needs but tests/lab/host-deps.sh does not install: {sorted(needed - listed)}"
    assert set(HOST_COMMANDS) <= listed, sorted(set(HOST_COMMANDS) - listed)


def host_deps_groups() -> dict[str, str]:
    """tests/lab/host-deps.sh's rows: each tool with its group."""
    rows = re.findall(r'^\s+"([a-z]+) (\S+) \S+ ', (ROOT / "tests/lab/host-deps.sh").read_text(), re.MULTILINE)
    assert rows, "no tool rows found in tests/lab/host-deps.sh"
    return {tool: group for group, tool in rows}


def test_the_demo_installs_every_tool_it_needs():
    """`make demo` installs only host-deps.sh's vm group: it must hold every tool the lab functions the demo calls
    (tests/lab/labcluster.py: lab.<function>(...)) check for with need(...), and the ssh client they call."""
    lab_source = (ROOT / "tests/lab/lab.py").read_text()
    called = set(re.findall(r"\blab\.(\w+)\(", (ROOT / "tests/lab/labcluster.py").read_text()))
    assert {"build_image", "boot"} <= called, called
    needed = {"ssh", "ssh-keygen"}
    for function in called:
        body = re.search(rf"^def {function}\(.*?(?=^\S)", lab_source, re.MULTILINE | re.DOTALL)
        assert body, f"lab.{function} not found in tests/lab/lab.py"
        for call in re.findall(r"need\(([^)]*)\)", body.group(0)):
            needed.update(re.findall(r'"([^"]+)"', call))
    groups = host_deps_groups()
    assert {tool for tool in needed if groups.get(tool) != "vm"} == set(), {tool: groups.get(tool) for tool in needed}
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo: (.*?)(?:##|$)", makefile, re.MULTILINE)
    assert demo and "lab-image-bookworm" in demo.group(1).split(), "make demo must build the bookworm image it boots"
    assert re.search(r"^\$\(addprefix lab-image-,\$\(LAB_SUITES\)\): lab-deps-vm$", makefile, re.MULTILINE), "lab-image-<suite> must install the vm group"

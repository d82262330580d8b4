"""The VM lab: Debian images built with mmdebstrap and QEMU virtual machines with their own kernel.

The host kernel has no IPVS (and containers share it), so everything that really loads kernel modules
runs here, in VMs under QEMU's software emulation, reached only through 127.0.0.1 forwarded ports.

  python3 tests/lab/lab.py image bookworm        build (or reuse) the image; prints its directory
  python3 tests/lab/lab.py rootfs-tar bookworm [--flavour node|fresh]
                                                 build (or reuse) a small rootfs tarball for `docker import`
  python3 tests/lab/lab.py docker-image bookworm [--flavour node|fresh]
                                                 import it as rkeops-ipvs-lab:bookworm[-fresh] (once per recipe)
  python3 tests/lab/lab.py up --state DIR [--image SUITE] NAME[:SUITE]...
                                                 boot clean VMs, wait for SSH, print JSON login facts
  python3 tests/lab/lab.py down --state DIR [NAME...]
                                                 stop VMs and delete their overlays

Images are cached under $RKEOPS_CACHE (default ~/.cache/rkeops-ipvs)/lab/<suite>-<recipe hash>/, so a
second run skips the build; every VM boots from a fresh qcow2 overlay on top of the cached image.
Only the standard library is used: this runs before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("RKEOPS_CACHE", Path.home() / ".cache" / "rkeops-ipvs")) / "lab"
MIRROR = os.environ.get("RKEOPS_LAB_MIRROR", "http://deb.debian.org/debian")
LAB_USER = "lab"

# What a lab node has before the role runs. ipset and ipvsadm are left out on purpose: the role installs
# them. docker.io is baked in because installing it under emulation takes minutes (docs/lab.md); the
# playbooks' end-to-end tests run kube-proxy's stand-in in it. python3-apt saves Ansible's apt module from
# installing it on every first run; libnss-myhostname resolves the hostname
# each VM gets at boot (sudo wants it); sudo lets the lab user become root as on a real node.
VM_PACKAGES = [
    "linux-image-amd64",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "kmod",
    "systemd-sysv",
    "udev",
    "ifupdown",
    "isc-dhcp-client",
    "dbus",
    "libnss-myhostname",
    "docker.io",
]
# Container images, built with mmdebstrap and `docker import` (no registry is reachable from the lab):
# - node: the Docker scenario's image, what Ansible needs to manage a Debian container;
# - fresh: a new machine of the project's kind for the set-up test (tests/setup): Python, make, git, the ssh
#   client and e2fsprogs, none of the lab's tools, and no apt lists, as on a fresh image.
ROOTFS_PACKAGES = {
    "node": ["python3", "python3-apt", "kmod"],
    "fresh": ["python3", "make", "git", "openssh-client", "e2fsprogs", "ca-certificates"],
}
# bullseye (Debian 11, kernel 5.10) is the oldest release the Debian mirror serves; bookworm 6.1,
# trixie 6.12. A suite is part of each image's recipe hash, so adding one leaves the other images' caches valid.
SUITES = ("bullseye", "bookworm", "trixie")
# Bump when the build steps below change in a way the lists above do not show.
RECIPE_VERSION = 4

FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
INTERFACES = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n"
SUDOERS = f"{LAB_USER} ALL=(ALL) NOPASSWD: ALL\n"
# The service range of the lab cluster (RKE's default service_cluster_ip_range).
LAB_SERVICE_RANGE = "10.43.0.0/16"
# Keep each VM's traffic inside the lab. QEMU's user network carries a guest's connection to any address out
# through this machine, so a connection that nothing in the VM answers (a service address with no IPVS or DNAT
# behind it) would leave it. The private ranges are blackholed; the VM's own 10.0.2.0/24 stays reachable (its
# connected route is more specific). The service range goes to a dummy device instead of a blackhole: the route is
# looked up before iptables' nat OUTPUT chain, so a blackhole would also break kube-proxy's DNAT. Docker gets a
# fixed bridge address (DOCKER_DAEMON_JSON) so that it needs no free pool and starts beside the blackholes.
LAB_NET_GUARD = f"""#!/bin/sh
set -e
for net in 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16; do ip route replace blackhole "$net"; done
ip link show lab-svc0 >/dev/null 2>&1 || ip link add lab-svc0 type dummy
ip link set lab-svc0 up
ip route replace {LAB_SERVICE_RANGE} dev lab-svc0
"""
LAB_NET_UNIT = """[Unit]
Description=rkeops-ipvs lab: no traffic to private ranges leaves the VM
After=networking.service
Wants=networking.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/rkeops-lab-net-guard

[Install]
WantedBy=multi-user.target
"""
DOCKER_DAEMON_JSON = '{"bip": "172.17.0.1/16"}\n'
# bullseye's Docker (20.10) looks for a free private /16 for docker0 even when "bip" is set, finds none beside the net
# guard's blackholes and does not start ("list bridge addresses failed: ... no available network"; moby/moby#33925,
# open: "If I configure the docker0 bridge manually dockerd starts"). bookworm's and trixie's Dockers start with "bip"
# alone here (the end-to-end tests run them). So on bullseye, docker.service creates docker0 with the "bip" address
# first (checked by hand on a bullseye lab VM). Files per suite: a suite without any keeps its recipe hash.
DOCKER_BRIDGE_DROPIN = """[Service]
ExecStartPre=/bin/sh -c 'ip link show docker0 >/dev/null 2>&1 || { ip link add docker0 type bridge && ip addr add 172.17.0.1/16 dev docker0; }'
"""
SUITE_FILES = {"bullseye": {"etc/systemd/system/docker.service.d/rkeops-lab-bridge.conf": DOCKER_BRIDGE_DROPIN}}


def log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def recipe_hash(kind: str, suite: str, packages: list[str]) -> str:
    parts = [kind, suite, MIRROR, sorted(packages), RECIPE_VERSION, FSTAB, INTERFACES, SUDOERS, LAB_NET_GUARD, LAB_NET_UNIT, DOCKER_DAEMON_JSON]
    # Only a VM image of a suite with files of its own hashes them (the other images keep their cached hashes).
    if kind == "vm" and suite in SUITE_FILES:
        parts.append(sorted(SUITE_FILES[suite].items()))
    text = json.dumps(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kwargs)


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit(f"lab: missing {', '.join(missing)}; run `make setup` (tests/lab/host-deps.sh installs each missing tool with apt)")


def check_suite(suite: str) -> None:
    if suite not in SUITES:
        sys.exit(f"lab: unknown suite {suite!r}; known: {', '.join(SUITES)}")


def mmdebstrap(suite: str, packages: list[str], target: Path, hooks: list[str], keep_lists: bool = True) -> None:
    cmd = ["mmdebstrap", "--quiet", "--variant=apt", "--include=" + ",".join(packages)]
    cmd += [f"--customize-hook={hook}" for hook in hooks]
    # With keep_lists, the lists stay in the image so `apt-get install` works before the first `apt-get update`.
    cmd += ["--skip=cleanup/apt/lists"] if keep_lists else []
    cmd += [suite, str(target), MIRROR]
    run(cmd)


def build_image(suite: str) -> Path:
    """Build the VM image for `suite` unless the cache already holds one for the same recipe."""
    check_suite(suite)
    out = CACHE / f"{suite}-{recipe_hash('vm', suite, VM_PACKAGES)}"
    if (out / "ready").exists():
        return out
    need("mmdebstrap", "mkfs.ext4")
    log(f"building the {suite} VM image in {out} (a few minutes, once per recipe)")
    started = time.monotonic()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    key = out / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rkeops-ipvs-lab", "-f", str(key)])
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        root = Path(tmp) / "root"
        hooks = [
            f'chroot "$1" useradd --create-home --shell /bin/bash --groups sudo,docker {LAB_USER}',
            # Docker would start at every boot and slow it down; the tests that need it start it.
            'chroot "$1" systemctl disable docker.service docker.socket containerd.service',
        ]
        mmdebstrap(suite, VM_PACKAGES, root, hooks)
        (root / "etc/fstab").write_text(FSTAB)
        (root / "etc/network/interfaces").write_text(INTERFACES)
        (root / "etc/sudoers.d/lab").write_text(SUDOERS)
        (root / "etc/sudoers.d/lab").chmod(0o440)
        guard = root / "usr/local/sbin/rkeops-lab-net-guard"
        guard.write_text(LAB_NET_GUARD)
        guard.chmod(0o755)
        (root / "etc/systemd/system/rkeops-lab-net-guard.service").write_text(LAB_NET_UNIT)
        (root / "etc/systemd/system/multi-user.target.wants/rkeops-lab-net-guard.service").symlink_to("/etc/systemd/system/rkeops-lab-net-guard.service")
        (root / "etc/docker").mkdir(exist_ok=True)
        (root / "etc/docker/daemon.json").write_text(DOCKER_DAEMON_JSON)
        for relative, content in SUITE_FILES.get(suite, {}).items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(content)
        ssh_dir = root / "home" / LAB_USER / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        uid_gid = (root / "home" / LAB_USER).stat()
        for path in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(path, uid_gid.st_uid, uid_gid.st_gid)
        # The hostname comes from the kernel command line (systemd.hostname=) of each VM.
        (root / "etc/hostname").unlink(missing_ok=True)
        boot = root / "boot"
        shutil.copy(next(boot.glob("vmlinuz-*")), out / "vmlinuz")
        shutil.copy(next(boot.glob("initrd.img-*")), out / "initrd.img")
        (out / "kernel-release").write_text(next(boot.glob("vmlinuz-*")).name.removeprefix("vmlinuz-") + "\n")
        run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", str(root), str(out / "disk.img"), "4G"])
    (out / "ready").write_text(f"{time.monotonic() - started:.0f} s\n")
    log(f"{suite} image ready in {time.monotonic() - started:.0f} s")
    return out


def build_rootfs_tar(suite: str, flavour: str = "node") -> Path:
    """A small rootfs tarball for `docker import` (no registry is reachable from the lab)."""
    check_suite(suite)
    packages = ROOTFS_PACKAGES[flavour]
    out = CACHE / f"{suite}-rootfs-{flavour}-{recipe_hash('tar-' + flavour, suite, packages)}"
    tar = out / "rootfs.tar"
    if (out / "ready").exists():
        return tar
    need("mmdebstrap")
    log(f"building the {suite} {flavour} rootfs tarball in {out}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    mmdebstrap(suite, packages, tar, [], keep_lists=flavour == "node")
    (out / "ready").touch()
    return tar


DOCKER_REPO = "rkeops-ipvs-lab"


def docker_image(suite: str, flavour: str = "node") -> str:
    """Import the rootfs tarball as <DOCKER_REPO>:<suite>[-<flavour>] unless the image of the same recipe is there already."""
    need("docker")
    tar = build_rootfs_tar(suite, flavour)
    tag = f"{DOCKER_REPO}:{suite}" + ("" if flavour == "node" else f"-{flavour}")
    recipe = tar.parent.name
    inspect = subprocess.run(
        ["docker", "image", "inspect", "--format", '{{ index .Config.Labels "rkeops.recipe" }}', tag], capture_output=True, text=True, check=False
    )
    if inspect.returncode != 0 or inspect.stdout.strip() != recipe:
        log(f"importing {tar} as {tag}")
        run(
            ["docker", "import", "--change", f"LABEL rkeops.recipe={recipe}", "--change", 'CMD ["sleep", "infinity"]', str(tar), tag], stdout=subprocess.DEVNULL
        )
    return tag


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Short, so that the socket path stays within the 108 bytes of a Unix socket name.
SSH_CONTROL_DIR = Path(tempfile.gettempdir()) / f"rkeops-ssh-{os.getuid()}"


def ssh_base(key: Path, port: int) -> list[str]:
    SSH_CONTROL_DIR.mkdir(mode=0o700, exist_ok=True)
    return [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=30",  # a loaded 2-core host answers the banner late
        # One connection per VM, reused for 60 s: each new one costs the emulated guest a key exchange and a login
        # session, and the tests poll the nodes over SSH every second or two. %C hashes host, port and user, so each
        # VM (its own forwarded port) gets its own; the master ends with the VM's QEMU, which closes the connection.
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPersist=60",
        "-o",
        f"ControlPath={SSH_CONTROL_DIR}/%C",
        f"{LAB_USER}@127.0.0.1",
    ]


# An ssh wrapper that logs the port of every invocation, then runs the real ssh: with pipelining, Ansible makes
# one ssh invocation per module execution, so the log counts SSH round trips per node.
SSH_COUNTER = """#!/bin/sh
port=none; prev=
for arg in "$@"; do
  if [ "$prev" = "-p" ]; then port="$arg"; fi
  if [ "$prev" = "-o" ]; then case "$arg" in Port=*) port="${arg#Port=}";; esac; fi
  prev="$arg"
done
echo "$port" >> "$RKEOPS_SSH_LOG"
exec ssh "$@"
"""


def ssh_counter_env(work: Path, log: Path) -> dict:
    """Environment for ansible-playbook that routes ssh through the counting wrapper, writing to `log`."""
    wrapper = work / "ssh-counter"
    if not wrapper.exists():
        wrapper.write_text(SSH_COUNTER)
        wrapper.chmod(0o755)
    return {"ANSIBLE_SSH_EXECUTABLE": str(wrapper), "RKEOPS_SSH_LOG": str(log)}


def ssh_round_trips(log: Path, vms: list[dict]) -> dict[str, int]:
    """SSH invocations per VM name in a counter log."""
    ports = log.read_text().split() if log.exists() else []
    return {vm["instance"]: ports.count(str(vm["port"])) for vm in vms}


def vm_dir(state: Path, name: str) -> Path:
    return state / name


def boot(image: Path, state: Path, name: str, memory: int, extra_append: str = "") -> dict:
    need("qemu-system-x86_64", "qemu-img")
    vdir = vm_dir(state, name)
    if (vdir / "qemu.pid").exists():
        stop(state, name)
    shutil.rmtree(vdir, ignore_errors=True)
    vdir.mkdir(parents=True)
    overlay = vdir / "disk.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "disk.img"), "-F", "raw", str(overlay)])
    port = free_port()
    append = f"root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname={name} {extra_append}".strip()
    # /dev/kvm hangs a stock Debian kernel in this nested setup (docs/lab.md): software emulation only.
    cmd = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        str(memory),
        "-smp",
        "1",
        "-display",
        "none",
        "-daemonize",
        "-pidfile",
        str(vdir / "qemu.pid"),
        "-serial",
        f"file:{vdir / 'console.log'}",
        "-kernel",
        str(image / "vmlinuz"),
        "-initrd",
        str(image / "initrd.img"),
        "-append",
        append,
        "-drive",
        # cache=unsafe: the overlay is thrown away with the VM, so the guest's flushes (dpkg, Docker) need not reach
        # this machine's disk; a guest reboot keeps QEMU and its cache.
        f"file={overlay},format=qcow2,if=virtio,cache=unsafe",
        "-netdev",
        f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device",
        "virtio-net-pci,netdev=n0",
    ]
    run(cmd)
    keep_niceness(int((vdir / "qemu.pid").read_text().strip()))
    facts = {
        "instance": name,
        "address": "127.0.0.1",
        "port": port,
        "user": LAB_USER,
        "identity_file": str(image / "id_ed25519"),
        "kernel_release": (image / "kernel-release").read_text().strip(),
        "image": str(image),
        "console_log": str(vdir / "console.log"),
    }
    (vdir / "facts.json").write_text(json.dumps(facts))
    return facts


def keep_niceness(pid: int) -> None:
    """Give process `pid`'s scheduling group this process's niceness.

    With sched_autogroup (kernel.sched_autogroup_enabled=1, as here) the CPU is shared between sessions first, and a
    process's own niceness only weighs inside its session. QEMU's -daemonize calls setsid(), so every VM is a session
    of its own, at niceness 0 whatever it inherited: make test's niced lanes (tests/lanes.py) then took as much CPU per
    VM as the end-to-end cluster's, whose first enable took 684 s instead of 109 s. Writing the niceness to
    /proc/PID/autogroup (sched(7), "The autogroup feature") gives the session the weight that nice(1) meant; a kernel
    built without autogroup has no such file, and nice(1) alone already works there."""
    niceness = os.nice(0)
    group = Path(f"/proc/{pid}/autogroup")
    if niceness and group.exists():
        group.write_text(f"{niceness}\n")


def docker_niceness_flags() -> list[str]:
    """`docker run` flags that give a container this process's niceness, as keep_niceness does for a VM.

    A container is a CPU cgroup of its own, which the kernel weighs against this machine's sessions by its cpu.shares
    (1024 by default), so nice(1) inside it ranks only the container's own processes. Under a cgroup parent of "/" it
    sits beside the sessions with the weight of this niceness: the kernel's sched_prio_to_weight steps by 1.25 per
    level (110 for 10). Only Docker's cgroupfs driver takes "/" as a parent; with another driver, no flags."""
    niceness = os.nice(0)
    if not niceness:
        return []
    driver = subprocess.run(["docker", "info", "--format", "{{.CgroupDriver}}"], capture_output=True, text=True, check=False).stdout.strip()
    if driver != "cgroupfs":
        return []
    return ["--cgroup-parent", "/", "--cpu-shares", str(max(2, round(1024 / 1.25**niceness)))]


def wait_ssh(facts: dict, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    cmd = ssh_base(Path(facts["identity_file"]), facts["port"]) + ["true"]
    while time.monotonic() < deadline:
        if subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(2)
    tail = Path(facts["console_log"]).read_text(errors="replace").splitlines()[-30:]
    sys.exit(f"lab: {facts['instance']} did not answer SSH on 127.0.0.1:{facts['port']} within {timeout:.0f} s; console tail:\n" + "\n".join(tail))


def stop(state: Path, name: str) -> None:
    vdir = vm_dir(state, name)
    pidfile = vdir / "qemu.pid"
    if pidfile.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _attempt in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(vdir, ignore_errors=True)


def cmd_up(args: argparse.Namespace) -> None:
    state = Path(args.state)
    wanted = [(name.partition(":")[0], name.partition(":")[2] or args.image) for name in args.names]
    images = {suite: build_image(suite) for suite in sorted({suite for _name, suite in wanted})}
    started = time.monotonic()
    all_facts = [boot(images[suite], state, name, args.memory) for name, suite in wanted]
    for facts in all_facts:
        wait_ssh(facts, args.timeout)
    log(f"{', '.join(name for name, _suite in wanted)} up in {time.monotonic() - started:.0f} s")
    print(json.dumps(all_facts, indent=2))


def cmd_down(args: argparse.Namespace) -> None:
    state = Path(args.state)
    names = args.names or ([p.name for p in state.iterdir() if p.is_dir()] if state.is_dir() else [])
    for name in names:
        stop(state, name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_image = sub.add_parser("image", help="build or reuse the VM image, print its directory")
    p_image.add_argument("suite", choices=SUITES)
    p_tar = sub.add_parser("rootfs-tar", help="build or reuse a rootfs tarball for docker import, print its path")
    p_tar.add_argument("suite", choices=SUITES)
    p_tar.add_argument("--flavour", default="node", choices=sorted(ROOTFS_PACKAGES))
    p_docker = sub.add_parser("docker-image", help="import the rootfs tarball into the local Docker engine, print the tag")
    p_docker.add_argument("suite", choices=SUITES)
    p_docker.add_argument("--flavour", default="node", choices=sorted(ROOTFS_PACKAGES))
    p_up = sub.add_parser("up", help="boot VMs from clean overlays and wait for SSH")
    p_up.add_argument("--state", required=True, help="directory for overlays, pid files and console logs")
    p_up.add_argument("--image", default="bookworm", choices=SUITES, help="suite for NAMEs without :SUITE")
    p_up.add_argument("--memory", type=int, default=1024, help="MiB per VM")
    p_up.add_argument("--timeout", type=float, default=300)
    p_up.add_argument("names", nargs="+", metavar="NAME[:SUITE]")
    p_down = sub.add_parser("down", help="stop VMs and delete their overlays")
    p_down.add_argument("--state", required=True)
    p_down.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "image":
        print(build_image(args.suite))
    elif args.command == "rootfs-tar":
        print(build_rootfs_tar(args.suite, args.flavour))
    elif args.command == "docker-image":
        print(docker_image(args.suite, args.flavour))
    elif args.command == "up":
        cmd_up(args)
    else:
        cmd_down(args)


if __name__ == "__main__":
    main()

"""A Vagrant box for vagrant-libvirt, made from the VM lab's Debian image (tests/lab/lab.py), for molecule/vagrant.

Vagrant's box catalogue cannot be reached from the lab, so the Vagrant scenario runs on a box built here:

  python3 tests/lab/vagrant_box.py build bookworm   build (or reuse) the .box file; prints its path
  python3 tests/lab/vagrant_box.py add bookworm     build it if needed, add it to Vagrant unless it is there,
                                                    drop older boxes of this recipe's family; prints the box name

The box is the lab image as vagrant-libvirt 0.11.2 expects a box (its docs, docs/boxes.md, and
lib/vagrant-libvirt/action/handle_box_image.rb: metadata.json with provider "libvirt", format "qcow2" and the
virtual size in GB; the disk as box.img; a Vagrantfile with the box's own defaults):
- box.img: the image's ext4 file system (whole disk, no partition table), converted to qcow2;
- the Vagrantfile: SSH as the image's user `lab` with the image's key (carried in the box), and direct kernel boot
  (libvirt.kernel/initrd/cmd_line), since the image has no boot loader: the same kernel command line as lab.py.

The kernel and initrd are copied out of the box to /var/lib/libvirt/boot/<box name>/: libvirt runs QEMU as
libvirt-qemu, which cannot reach into root's home where Vagrant keeps its boxes (~/.vagrant.d, mode 0700), and
/var/lib/libvirt/boot is Debian's directory for the kernels of direct-booted guests.

Boxes are cached in $RKEOPS_CACHE (default ~/.cache/rkeops-ipvs)/vagrant/<name>/, and the box name carries the
recipe hash (the lab image's recipe, plus this file's), so a changed recipe makes a new box instead of reusing a
stale one. Only the standard library is used, as in lab.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab  # noqa: E402

CACHE = Path(os.environ.get("RKEOPS_CACHE", Path.home() / ".cache" / "rkeops-ipvs")) / "vagrant"
BOOT_DIR = Path(os.environ.get("RKEOPS_LIBVIRT_BOOT_DIR", "/var/lib/libvirt/boot"))
NAME_PREFIX = "rkeops-ipvs-lab-"
# The image file system is 4G (lab.py: mkfs.ext4 ... 4G); metadata.json gives the disk size in GB.
VIRTUAL_SIZE_GB = 4
# Bump when the build steps below change in a way BOX_VAGRANTFILE does not show.
BOX_RECIPE_VERSION = 1

# The box's own Vagrantfile: Vagrant merges it under the scenario's (Vagrant's docs, "Vagrantfile load order").
# Vagrant loads it with Kernel.load, so __dir__ is the box's directory, where the key is. The kernel command line
# is lab.py's boot() one; systemd.hostname gives the VM the name sudo resolves (libnss-myhostname).
BOX_VAGRANTFILE = """# The rkeops-ipvs lab box (tests/lab/vagrant_box.py): Debian from the VM lab's image, direct kernel boot.
Vagrant.configure("2") do |config|
  config.ssh.username = "{user}"
  config.ssh.private_key_path = File.join(__dir__, "id_ed25519")
  config.ssh.insert_key = false
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
    libvirt.kernel = "{boot}/vmlinuz"
    libvirt.initrd = "{boot}/initrd.img"
    libvirt.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname=rkeops-vagrant"
  end
end
"""


def log(msg: str) -> None:
    print(f"vagrant-box: {msg}", file=sys.stderr, flush=True)


def box_name(suite: str, image: Path) -> str:
    text = json.dumps([image.name, BOX_RECIPE_VERSION, BOX_VAGRANTFILE, VIRTUAL_SIZE_GB])
    return f"{NAME_PREFIX}{suite}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def build(suite: str) -> tuple[str, Path, Path]:
    """Build the .box for `suite` unless the cache holds one of the same recipe; return (name, .box path, image)."""
    image = lab.build_image(suite)
    name = box_name(suite, image)
    out = CACHE / name
    box = out / f"{name}.box"
    if (out / "ready").exists():
        return name, box, image
    lab.need("qemu-img")
    log(f"building {box}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        work = Path(tmp)
        lab.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(image / "disk.img"), str(work / "box.img")])
        (work / "metadata.json").write_text(json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": VIRTUAL_SIZE_GB}) + "\n")
        (work / "Vagrantfile").write_text(BOX_VAGRANTFILE.format(user=lab.LAB_USER, boot=BOOT_DIR / name))
        shutil.copy(image / "id_ed25519", work / "id_ed25519")
        (work / "id_ed25519").chmod(0o600)
        for part in ("vmlinuz", "initrd.img", "kernel-release"):
            shutil.copy(image / part, work / part)
        partial = out / "box.partial"
        # Uncompressed: the qcow2 image is most of it and compresses poorly; Vagrant reads plain tar as well.
        with tarfile.open(partial, "w") as tar:
            for item in sorted(work.iterdir()):
                tar.add(item, arcname=item.name)
        partial.rename(box)
    (out / "ready").touch()
    return name, box, image


def vagrant(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", *args], check=True, text=True, **kwargs)


def installed_boxes() -> list[str]:
    """Names of the libvirt boxes Vagrant has (`vagrant box list --machine-readable`: ts,target,type,data rows)."""
    out = vagrant("box", "list", "--machine-readable", capture_output=True).stdout
    rows = [line.split(",", 3) for line in out.splitlines()]
    names = [row[3] for row in rows if len(row) == 4 and row[2] == "box-name"]
    providers = [row[3] for row in rows if len(row) == 4 and row[2] == "box-provider"]
    return [name for name, provider in zip(names, providers) if provider == "libvirt"]


def pool_volumes(name: str) -> list[str]:
    """vagrant-libvirt's copies of a box's image in libvirt's default pool (handle_box_image.rb names them
    <box name, slashes escaped>_vagrant_box_image_<version>_<disk>.img)."""
    out = subprocess.run(["virsh", "-c", "qemu:///system", "vol-list", "--pool", "default"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines()[2:] if line.split() and line.split()[0].startswith(f"{name}_vagrant_box_image_")]


def add(suite: str) -> str:
    lab.need("vagrant", "virsh")
    name, box, image = build(suite)
    boot = BOOT_DIR / name
    if not (boot / "ready").exists():
        boot.mkdir(parents=True, exist_ok=True)
        for part in ("vmlinuz", "initrd.img"):
            shutil.copy(image / part, boot / part)
        (boot / "ready").touch()
    present = installed_boxes()
    if name not in present:
        log(f"adding {box} to Vagrant as {name}")
        vagrant("box", "add", "--force", "--provider", "libvirt", "--name", name, str(box), stdout=subprocess.DEVNULL)
    # Older boxes of the same suite (another recipe): the box, its image in libvirt's pool, its boot files.
    for old in present:
        if old.startswith(f"{NAME_PREFIX}{suite}-") and old != name:
            log(f"removing the older box {old}")
            vagrant("box", "remove", "--force", "--all", old, stdout=subprocess.DEVNULL)
            for volume in pool_volumes(old):
                subprocess.run(["virsh", "-c", "qemu:///system", "vol-delete", "--pool", "default", volume], capture_output=True, check=False)
            shutil.rmtree(BOOT_DIR / old, ignore_errors=True)
            shutil.rmtree(CACHE / old, ignore_errors=True)
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (("build", "build or reuse the .box file, print its path"), ("add", "add the box to Vagrant, print its name")):
        sub.add_parser(command, help=text).add_argument("suite", choices=lab.SUITES)
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build(args.suite)[1])
    else:
        print(add(args.suite))


if __name__ == "__main__":
    main()

"""Benchmark: a VM of the Vagrant scenario (molecule/vagrant) against a lab VM (tests/lab/lab.py), booted together.

Both run the same Debian image (the Vagrant box is made from it: tests/lab/vagrant_box.py) under QEMU's software
emulation; the lab VM is QEMU started directly, the other goes through Vagrant, vagrant-libvirt and libvirt with
the scenario's own Vagrantfile (molecule/vagrant/Vagrantfile.j2, usernet mode). They boot at the same moment,
so both see the same host load, and the figure that matters is the ratio: time until SSH answers through Vagrant
over the time until it answers on the lab VM. On a quiet host the lab VM answers in about 35 s (docs/lab.md);
multiply to estimate the Vagrant VM's time there. Two VMs at once, stopped at the end.

Run: make bench-vagrant   (a few minutes; libvirtd running: make libvirt-up)
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import lab  # noqa: E402
import vagrant_box  # noqa: E402

NAME = "bench1"


def vagrantfile(box: str, port: int) -> str:
    template = jinja2.Template((ROOT / "molecule" / "vagrant" / "Vagrantfile.j2").read_text(), trim_blocks=True)
    platform = {"name": NAME, "box": box, "libvirt_driver": "qemu", "memory": 1024}
    return template.render(__usernet=True, __ports={NAME: port}, molecule_yml={"platforms": [platform]})


def lab_boot(image: Path, state: Path) -> float:
    started = time.monotonic()
    facts = lab.boot(image, state, "bench0", 1024)
    lab.wait_ssh(facts, 1800)
    return time.monotonic() - started


def vagrant_boot(work: Path) -> float:
    started = time.monotonic()
    subprocess.run(["vagrant", "up", "--no-provision", "--provider", "libvirt"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    box = vagrant_box.add("bookworm")
    image = lab.build_image("bookworm")
    with tempfile.TemporaryDirectory(prefix="rkeops-bench-vagrant-") as tmp:
        work = Path(tmp)
        (work / "Vagrantfile").write_text(vagrantfile(box, lab.free_port()))
        state = work / "vms"
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                lab_time = pool.submit(lab_boot, image, state)
                vagrant_time = pool.submit(vagrant_boot, work)
                lab_s, vagrant_s = lab_time.result(), vagrant_time.result()
        finally:
            lab.stop(state, "bench0")
            subprocess.run(["vagrant", "destroy", "--force"], cwd=work, check=False, stdout=subprocess.DEVNULL)
    print(f"lab VM (QEMU directly), boot to SSH:        {lab_s:7.1f} s")
    print(f"Vagrant VM (vagrant-libvirt), up to SSH:    {vagrant_s:7.1f} s")
    print(f"ratio Vagrant / lab:                        {vagrant_s / lab_s:7.2f}")


if __name__ == "__main__":
    main()

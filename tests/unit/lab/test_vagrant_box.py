"""tests/lab/vagrant_box.py: the .box file it makes from a lab image, as vagrant-libvirt 0.11.2 reads a box.

A small stand-in image directory (the files lab.build_image() leaves: disk.img, vmlinuz, initrd.img,
kernel-release, id_ed25519) replaces the real image, so this runs in a second; qemu-img does the real conversion.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
import vagrant_box  # noqa: E402


def fake_image(root: Path, recipe: str) -> Path:
    image = root / f"bookworm-{recipe}"
    image.mkdir(parents=True)
    with (image / "disk.img").open("wb") as disk:
        disk.truncate(4 * 1024 * 1024)
    (image / "vmlinuz").write_bytes(b"kernel")
    (image / "initrd.img").write_bytes(b"initrd")
    (image / "kernel-release").write_text("6.1.0-test-amd64\n")
    (image / "id_ed25519").write_text("key\n")
    return image


@pytest.fixture
def box_env(tmp_path, monkeypatch):
    """vagrant_box with its cache and boot directory under tmp_path and lab.build_image() returning a stand-in
    image whose recipe the test can change (images["recipe"])."""
    images = {"recipe": "aaaaaaaaaaaa"}

    def build_image(_suite):
        image = tmp_path / "lab" / f"bookworm-{images['recipe']}"
        return image if image.exists() else fake_image(tmp_path / "lab", images["recipe"])

    monkeypatch.setattr(vagrant_box, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(vagrant_box, "BOOT_DIR", tmp_path / "boot")
    monkeypatch.setattr(vagrant_box.lab, "build_image", build_image)
    return images, tmp_path


def test_box_holds_what_vagrant_libvirt_reads(box_env):
    _images, tmp_path = box_env
    name, box, _image = vagrant_box.build("bookworm")
    assert name.startswith("rkeops-ipvs-lab-bookworm-")
    with tarfile.open(box) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert sorted(members) == ["Vagrantfile", "box.img", "id_ed25519", "initrd.img", "kernel-release", "metadata.json", "vmlinuz"]
        assert json.load(tar.extractfile("metadata.json")) == {"provider": "libvirt", "format": "qcow2", "virtual_size": 4}
        # qcow2's magic number: the raw ext4 image was converted.
        assert tar.extractfile("box.img").read(4) == b"QFI\xfb"
        # ssh refuses a private key that others can read.
        assert members["id_ed25519"].mode & 0o077 == 0
        vagrantfile = tar.extractfile("Vagrantfile").read().decode()
    assert 'config.ssh.username = "lab"' in vagrantfile
    assert f'libvirt.kernel = "{tmp_path / "boot" / name}/vmlinuz"' in vagrantfile
    assert f'libvirt.initrd = "{tmp_path / "boot" / name}/initrd.img"' in vagrantfile
    assert "root=/dev/vda" in vagrantfile and "net.ifnames=0" in vagrantfile


def test_a_second_build_reuses_the_cached_box(box_env):
    _name, box, _image = vagrant_box.build("bookworm")
    before = box.stat().st_mtime_ns
    assert vagrant_box.build("bookworm")[1] == box
    assert box.stat().st_mtime_ns == before


def test_another_image_recipe_makes_another_box(box_env):
    images, _tmp_path = box_env
    first = vagrant_box.build("bookworm")[0]
    images["recipe"] = "bbbbbbbbbbbb"
    second = vagrant_box.build("bookworm")[0]
    assert first != second

"""The module run through AnsibleModule: files on disk, check mode, diff, backup, failures."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.rkeops.ipvs.plugins.modules import cluster_kubeproxy

from helpers import corpus_files, extra_args

CLUSTER = """\
# production cluster
nodes:
  - address: 10.0.0.1
    user: rke
    ssh_key: |-
      -----BEGIN OPENSSH PRIVATE KEY-----
      c2VjcmV0LWtleS1tYXRlcmlhbA==
      -----END OPENSSH PRIVATE KEY-----
    role: [controlplane, etcd, worker]
private_registries:
  - url: registry.example
    password: hunter2
services:
  kubeproxy:
    extra_args:
      v: 2
"""
SECRETS = ("c2VjcmV0LWtleS1tYXRlcmlhbA", "hunter2", "BEGIN OPENSSH")


def run(capsys, check=False, diff=False, **params):
    args = dict(params)
    args["_ansible_check_mode"] = check
    args["_ansible_diff"] = diff
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        cluster_kubeproxy.main()
    output = capsys.readouterr().out
    result = json.loads(output)
    result["_rc"] = exited.value.code
    result["_raw"] = output
    return result


def snapshot(path):
    info = os.stat(path)
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest(), info.st_mtime_ns, stat.S_IMODE(info.st_mode)


@pytest.fixture
def cluster(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_text(CLUSTER)
    path.chmod(0o600)
    return path


def test_first_run_changes_second_run_does_not_rewrite(cluster, capsys):
    first = run(capsys, path=str(cluster), ipvs_scheduler="rr")
    assert first["_rc"] == 0 and first["changed"] is True
    assert first["proxy_mode_before"] is None and first["proxy_mode_after"] == "ipvs"
    assert extra_args(cluster.read_text()) == {"v": "2", "proxy-mode": "ipvs", "ipvs-scheduler": "rr"}
    assert first["extra_args"] == {"v": "2", "proxy-mode": "ipvs", "ipvs-scheduler": "rr"}
    before = snapshot(cluster)
    second = run(capsys, path=str(cluster), ipvs_scheduler="rr")
    assert second["changed"] is False
    assert snapshot(cluster) == before  # same bytes, same mtime: not rewritten


def test_check_mode_reports_and_writes_nothing(cluster, capsys):
    before = snapshot(cluster)
    result = run(capsys, check=True, diff=True, path=str(cluster))
    assert result["changed"] is True
    assert "proxy-mode: ipvs" in result["diff"]["after"]
    assert snapshot(cluster) == before
    assert sorted(os.listdir(cluster.parent)) == ["cluster.yml"]


def test_diff_shows_only_the_stanza_and_no_secret(cluster, capsys):
    result = run(capsys, diff=True, path=str(cluster))
    assert result["diff"]["before"] == "  kubeproxy:\n    extra_args:\n      v: 2\n"
    assert result["diff"]["after"].startswith("  kubeproxy:\n    extra_args:\n      v: 2\n      proxy-mode: ipvs\n")
    assert "services.kubeproxy" in result["diff"]["before_header"]
    for secret in SECRETS:
        assert secret not in result["_raw"]


def test_mode_and_backup_are_preserved(cluster, capsys):
    result = run(capsys, path=str(cluster), backup=True)
    backup = result["backup_file"]
    assert stat.S_IMODE(os.stat(cluster).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    with open(backup) as handle:
        assert handle.read() == CLUSTER
    assert sorted(os.listdir(cluster.parent)) == sorted(["cluster.yml", os.path.basename(backup)])


def test_file_attributes_are_applied(cluster, capsys):
    run(capsys, path=str(cluster))
    result = run(capsys, path=str(cluster), mode="0640")
    assert result["changed"] is True
    assert stat.S_IMODE(os.stat(cluster).st_mode) == 0o640


def test_symlink_is_followed_and_kept(cluster, capsys, tmp_path):
    link = tmp_path / "link.yml"
    link.symlink_to(cluster)
    result = run(capsys, path=str(link))
    assert result["changed"] is True and result["path"] == str(cluster)
    assert link.is_symlink()
    assert "proxy-mode: ipvs" in cluster.read_text()


def test_warnings_reach_the_user(tmp_path, capsys):
    path = tmp_path / "cluster.yml"
    path.write_text("services:\n  kubeproxy:\n    extra_binds:\n      - /usr/lib/modules:/lib/modules\n")
    result = run(capsys, path=str(path))
    # ansible-core 2.19 returns warnings as structured summaries; older cores as strings.
    texts = [w if isinstance(w, str) else w["event"]["msg"] for w in result["warnings"]]
    assert any("duplicate mount point" in t and "line 4" in t for t in texts)


@pytest.mark.parametrize("path", corpus_files("cluster-yml-bad"), ids=lambda p: p.name)
def test_bad_corpus_file_fails_and_stays_byte_identical(path, tmp_path, capsys):
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    before = snapshot(copy)
    result = run(capsys, path=str(copy), backup=True)
    assert result["_rc"] == 1 and result["failed"] is True
    assert str(copy) in result["msg"] and "file unchanged" in result["msg"]
    assert snapshot(copy) == before
    assert os.listdir(tmp_path) == [path.name]


def test_missing_file(tmp_path, capsys):
    result = run(capsys, path=str(tmp_path / "nope.yml"))
    assert result["failed"] and "no such file" in result["msg"]


def test_directory(tmp_path, capsys):
    result = run(capsys, path=str(tmp_path))
    assert result["failed"] and "is a directory" in result["msg"]


def test_symlink_loop(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    result = run(capsys, path=str(tmp_path / "a"))
    assert result["failed"] and "symbolic link loop" in result["msg"]


def test_unreadable_file(cluster, capsys, monkeypatch):
    # Tests run as root in CI, where a 0000 mode does not stop reads: refuse the open() itself.
    real_open = open

    def guarded_open(name, *args, **kwargs):
        if str(name) == str(cluster):
            raise PermissionError(13, "Permission denied")
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded_open)
    result = run(capsys, path=str(cluster))
    assert result["failed"] and "cannot be read (Permission denied)" in result["msg"]


def test_not_utf8(tmp_path, capsys):
    path = tmp_path / "cluster.yml"
    path.write_bytes(b"nodes: []\nname: \xff\n")
    result = run(capsys, path=str(path))
    assert result["failed"] and "not UTF-8" in result["msg"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ipvs_scheduler": "fastest"}, "value of ipvs_scheduler must be one of"),
        ({"ipvs_exclude_cidrs": ["10.0.0.0/40"]}, "not a CIDR"),
        ({"ipvs_tcp_timeout": "-1s"}, "must not be negative"),
    ],
)
def test_bad_option_values_fail_before_reading(cluster, capsys, params, message):
    before = snapshot(cluster)
    result = run(capsys, path=str(cluster), **params)
    assert result["failed"] and message in result["msg"]
    assert snapshot(cluster) == before


def test_failed_write_leaves_file_and_no_temporary(cluster, capsys, monkeypatch):
    before = snapshot(cluster)

    def broken_move(self, src, dest, unsafe_writes=False, keep_dest_attrs=True):
        self.fail_json(msg="simulated rename failure")

    monkeypatch.setattr(cluster_kubeproxy.AnsibleModule, "atomic_move", broken_move)
    result = run(capsys, path=str(cluster))
    assert result["failed"] and "simulated rename failure" in result["msg"]
    assert snapshot(cluster) == before
    assert os.listdir(cluster.parent) == ["cluster.yml"]

"""The prereqs role's apt step (tasks/packages.yml) run by ansible-playbook on localhost, with a fake apt-get.

What it proves: apt's lists are refreshed when they hold no package index or apt last wrote one too long ago (the
os.apt_lists that ipvs_node_info reports), not otherwise; a failed install names the packages, apt's own error
lines (a source URL's password masked) and what to do; a successful one reports a change and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402

FAKE_APT_GET = """\
#!/bin/sh
# Fake apt-get: records its arguments, then answers as the test prepared (stderr text and exit code per command).
dir=%(dir)s
echo "$*" >> "$dir/calls"
case "$*" in
  update*) what=update ;;
  *) what=install ;;
esac
[ -f "$dir/$what.err" ] && cat "$dir/$what.err" >&2
exit "$(cat "$dir/$what.rc" 2>/dev/null || echo 0)"
"""


@pytest.fixture
def node(tmp_path):
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "apt-get"
    fake.write_text(FAKE_APT_GET % {"dir": tmp_path})
    fake.chmod(0o755)
    return tmp_path


def packages_step(node: Path, apt_lists: dict, update=(0, ""), install=(0, "")):
    for what, (rc, err) in (("update", update), ("install", install)):
        (node / ("%s.rc" % what)).write_text(str(rc))
        (node / ("%s.err" % what)).write_text(err)
    facts = {
        "__prereqs_node": {"os": {"apt_lists": apt_lists}},
        "_prereqs_packages_missing": ["ipset", "ipvsadm"],
        "_prereqs_os_family": "Debian",
        "_prereqs_recorded_packages": [],
    }
    (node / "facts.json").write_text(json.dumps(facts))
    (node / "site.yml").write_text(
        textwrap.dedent(
            """\
            - name: The packages step alone
              hosts: localhost
              gather_facts: false
              vars_files: [facts.json]
              tasks:
                - name: Install the packages
                  ansible.builtin.include_role:
                    name: rkeops.ipvs.prereqs
                    tasks_from: packages
            """
        )
    )
    done = ansible_cli.run(
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % sys.executable,
        node / "site.yml",
        # The fake apt-get first on PATH.
        env={"PATH": "%s:%s" % (node / "bin", os.environ["PATH"])},
        # The tests match apt's messages on one line each, as JSON strings.
        result_format="json",
        cwd=node,
        # A guard against a hang, not a time limit: make test runs this lane niced beside emulated VMs (tests/lanes.py).
        timeout=900,
    )
    calls = (node / "calls").read_text().splitlines() if (node / "calls").exists() else []
    return done, calls


INSTALL = "install --yes --quiet --quiet -o DPkg::Lock::Timeout=120 ipset ipvsadm"


@pytest.mark.parametrize(
    ("apt_lists", "updated"),
    [
        # An emptied lists folder is fresh, yet apt-get install would find nothing: refresh.
        ({"indexes": 0, "age": -1}, True),
        ({"indexes": 3, "age": 7200}, True),
        ({"indexes": 3, "age": 600}, False),
    ],
    ids=["no-index", "stale", "fresh"],
)
def test_lists_refreshed_when_empty_or_stale_and_success_changes_only(node, apt_lists, updated):
    done, calls = packages_step(node, apt_lists)
    assert done.returncode == 0, done.stdout[-3000:]
    assert calls == (["update -qq"] if updated else []) + [INSTALL]
    assert "changed: [localhost]" in done.stdout
    assert "Report what apt could not install" in done.stdout  # listed, and skipped
    assert "apt-get could not install" not in done.stdout


def test_a_failed_install_names_the_packages_apt_s_errors_and_what_to_do(node):
    update_err = (
        "W: Failed to fetch https://robot:s3cret@apt.example.org/debian/dists/bookworm/InRelease  401  Unauthorized [IP: 10.0.0.9 443]\n"
        "W: Some index files failed to download. They have been ignored, or old ones used instead.\n"
    )
    done, calls = packages_step(node, {"indexes": 0, "age": -1}, update=(0, update_err), install=(100, "E: Unable to locate package ipset\n"))
    assert done.returncode != 0
    assert calls == ["update -qq", INSTALL]
    message = done.stdout
    # apt's lines in the order apt printed them: the update's warnings (the reason), then the install's error.
    assert (
        "apt-get could not install ipset, ipvsadm (exit code 100; apt's lists held 0 package index(es), refreshed first): "
        "W: Failed to fetch https://***@apt.example.org/debian/dists/bookworm/InRelease  401  Unauthorized [IP: 10.0.0.9 443] "
        "W: Some index files failed to download. They have been ignored, or old ones used instead. "
        "E: Unable to locate package ipset"
    ) in message
    assert "Check the node's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/) and its network to the mirror" in message
    assert "s3cret" not in message


def test_a_held_lock_is_named_as_such(node):
    lock = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)\n"
    done, calls = packages_step(node, {"indexes": 3, "age": 60}, install=(100, lock))
    assert done.returncode != 0
    assert calls == [INSTALL]
    assert "apt's lists held 3 package index(es) and were not refreshed): E: Could not get lock" in done.stdout
    assert "Another package manager held apt's lock for 2 minutes" in done.stdout

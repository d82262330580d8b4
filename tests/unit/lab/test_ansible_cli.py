"""tests/lab/ansible_cli.py: the one command and environment every ansible-playbook run of the tests gets.

The layers are checked on environment() alone; one real run on localhost shows what a caller then reads: plain
text whatever the calling environment forces, and the result format the caller asked for.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from ansible.release import __version__ as ANSIBLE_CORE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
import ansible_cli  # noqa: E402

# A message a YAML result would fold over several lines and a JSON one escapes: a long line with double quotes.
MESSAGE = 'kube-proxy on "node1" runs in ipvs mode, ' + "and this sentence goes on long enough to be folded " * 3
PLAY = textwrap.dedent(
    """\
    - name: Say something
      hosts: localhost
      gather_facts: false
      tasks:
        - name: Print a message
          ansible.builtin.debug:
            msg: %s
    """
) % repr(MESSAGE)


def test_the_settings_win_over_the_calling_environment_and_the_callers_env_over_them(monkeypatch):
    monkeypatch.setenv("ANSIBLE_PIPELINING", "False")
    monkeypatch.setenv("ANSIBLE_FORCE_COLOR", "True")
    monkeypatch.setenv("RKEOPS_UNRELATED", "kept")
    env = ansible_cli.environment()
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert env["ANSIBLE_FORCE_COLOR"] == "False"
    assert env["RKEOPS_UNRELATED"] == "kept"
    assert ansible_cli.environment({"ANSIBLE_PIPELINING": "False"})["ANSIBLE_PIPELINING"] == "False"


def test_the_collections_path_is_the_callers_then_the_environments_then_the_checkouts(monkeypatch, tmp_path):
    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH", raising=False)
    assert ansible_cli.environment()["ANSIBLE_COLLECTIONS_PATH"] == str(ansible_cli.COLLECTIONS)
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", "/elsewhere")
    assert ansible_cli.environment()["ANSIBLE_COLLECTIONS_PATH"] == "/elsewhere"
    assert ansible_cli.environment(collections=tmp_path)["ANSIBLE_COLLECTIONS_PATH"] == str(tmp_path)


def test_the_result_format_is_set_only_when_asked(monkeypatch):
    monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "yaml")
    assert ansible_cli.environment()["ANSIBLE_CALLBACK_RESULT_FORMAT"] == "yaml"
    assert ansible_cli.environment(result_format="json")["ANSIBLE_CALLBACK_RESULT_FORMAT"] == "json"
    monkeypatch.delenv("ANSIBLE_CALLBACK_RESULT_FORMAT")
    assert "ANSIBLE_CALLBACK_RESULT_FORMAT" not in ansible_cli.environment()


def test_the_programs_are_those_of_the_ansible_core_this_python_imports():
    # So that `make oldest-stack`, whose pytest runs on ansible-core 2.16, runs 2.16's ansible-playbook.
    for program in ("ansible-playbook", "ansible"):
        done = ansible_cli.run("--version", program=program, timeout=120)
        assert done.stdout.startswith("%s [core %s]" % (program, ANSIBLE_CORE)), done.stdout + done.stderr
    assert ansible_cli.command("-i", Path("x"))[1:] == ["-i", "x"]


def test_a_run_reads_as_plain_text_in_the_format_asked_for(monkeypatch, tmp_path):
    (tmp_path / "site.yml").write_text(PLAY)
    # What a developer's shell may say: colours forced, YAML results.
    monkeypatch.setenv("ANSIBLE_FORCE_COLOR", "True")
    monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "yaml")
    done = ansible_cli.run("-i", "localhost,", "-c", "local", "site.yml", result_format="json", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b[" not in done.stdout + done.stderr
    assert '"msg": %s' % json.dumps(MESSAGE) in done.stdout
    # Without a format, the calling environment's choice stands: YAML folds the long message.
    done = ansible_cli.run("-i", "localhost,", "-c", "local", "site.yml", cwd=tmp_path, timeout=600)
    assert done.returncode == 0
    assert "msg: " in done.stdout and MESSAGE not in done.stdout

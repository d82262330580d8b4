"""How the tests, the lab and the benchmarks run ansible-playbook (and ansible): one command, one environment.

Every run in tests/unit, tests/vm, tests/e2e, tests/lab and bench/ goes through run() (or command() and
environment() where a caller starts the process itself), so that a setting changes here and nowhere else. What a
caller needs differently is an argument, with the caller's comment saying why: `env` (extra variables, e.g. the ssh
counter of lab.ssh_counter_env), `result_format` (JSON where a test reads messages on one line), `collections`,
`cwd`, `stream` and `timeout`.

Importable as `ansible_cli` with tests/lab on sys.path, as lab.py and labcluster.py are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `make collection` links this checkout there as ansible_collections/rkeops/ipvs.
COLLECTIONS = ROOT / "build" / "collections"

# The settings of every run. They win over the calling environment's; `env` wins over them.
ENV = {
    # Plain text, to read in a log and to match in a test: no colour codes, even where the environment forces them.
    "ANSIBLE_NOCOLOR": "True",
    "ANSIBLE_FORCE_COLOR": "False",
    # No <playbook>.retry files written beside the playbooks, whatever an ansible.cfg says.
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    # Lab VMs get new host keys at every boot, on ports that the next boot reuses.
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    # One SSH round trip per module execution: the round trips the benchmarks count and the role's README states
    # are pipelined ones.
    "ANSIBLE_PIPELINING": "True",
    # An inventory source that does not parse (a broken rke_cluster plugin, a mistyped file) stops the run, instead
    # of a warning and a play against no host.
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    # Plays on the admin host alone (localhost): no warnings about an implicit or localhost-only inventory.
    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    "ANSIBLE_LOCALHOST_WARNING": "False",
    # Hosts without ansible_python_interpreter (the rke_cluster inventory's nodes) discover it without a warning;
    # a host or -e value still wins.
    "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
    # The connection and become timeout (10 s by default): make test runs emulated VMs side by side on few cores,
    # and an answer from one of them can take longer than that.
    "ANSIBLE_TIMEOUT": "60",
}


def executable(program: str = "ansible-playbook") -> str:
    """`program` of the Ansible this Python runs (its virtual environment's bin: `make oldest-stack` runs 2.16's),
    else the one on PATH."""
    found = shutil.which(program, path=os.path.dirname(sys.executable)) or shutil.which(program)
    if found is None:
        raise FileNotFoundError(f"{program} is neither beside {sys.executable} nor on PATH: run `make setup`")
    return found


def environment(env: dict | None = None, *, result_format: str | None = None, collections: Path | str | None = None) -> dict[str, str]:
    """The calling environment with ENV, then `env`, on top.

    result_format: the default callback's ANSIBLE_CALLBACK_RESULT_FORMAT ("json", "yaml"); None leaves Ansible's
    default (or the calling environment's choice), as an operator sees it.
    collections: ANSIBLE_COLLECTIONS_PATH; None keeps the calling environment's (make exports it), else COLLECTIONS.
    """
    merged = dict(os.environ, **ENV)
    merged["ANSIBLE_COLLECTIONS_PATH"] = str(collections) if collections is not None else os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
    if result_format is not None:
        merged["ANSIBLE_CALLBACK_RESULT_FORMAT"] = result_format
    merged.update(env or {})
    return merged


def command(*args: str | Path, program: str = "ansible-playbook") -> list[str]:
    """`program` with its arguments, e.g. command("-i", inventory, "site.yml")."""
    return [executable(program), *(str(arg) for arg in args)]


def run(
    *args: str | Path,
    program: str = "ansible-playbook",
    env: dict | None = None,
    result_format: str | None = None,
    collections: Path | str | None = None,
    cwd: Path | str | None = None,
    stream: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run `program` with `args` and return its result, never raising on its exit code.

    Output is captured as text (stdout, stderr), or with stream=True goes to this process's terminal as it comes
    (stdout and stderr are then None). timeout: seconds before subprocess.TimeoutExpired, a guard against a hang.
    """
    return subprocess.run(
        command(*args, program=program),
        capture_output=not stream,
        text=True,
        env=environment(env, result_format=result_format, collections=collections),
        cwd=cwd,
        check=False,
        timeout=timeout,
    )

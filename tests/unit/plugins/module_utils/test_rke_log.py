"""Reading rke up's output: success, the fatal message and its cause, in both layouts logrus writes.

Real output: tests/data/samples/14 (rancher/rke#1920, rke v1.0.4) and 15 (rancher/rke#1918, rke v1.0.4 then
v1.1.0-rc11), read verbatim from the files, as posted (the terminal layout, FATA[...]), and converted to the layout
rke writes when its output goes to a file (time="..." level=... msg="...", docs/research/rke-kube-proxy.md A7).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._rke_log import SUCCESS, lost_cause_patterns, mask, parse, summarize

SAMPLES = Path(__file__).resolve().parents[4] / "tests" / "data" / "samples"
LEVELS = {"INFO": "info", "WARN": "warning", "ERRO": "error", "FATA": "fatal"}


def sample(name: str) -> list[str]:
    """A sample's lines, verbatim, without its '# SOURCE:' header."""
    path = next(SAMPLES.glob(name + "-*"))
    return [line for line in path.read_text().splitlines() if not line.startswith("# SOURCE:")]


def go_quote(text: str) -> str:
    """Go's %q of ASCII text, as logrus' TextFormatter quotes a value."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"%s"' % escaped


def file_layout(tty_lines: list[str]) -> str:
    """Terminal-layout lines (LEVL[0085] message, padded) as logrus writes them to a file."""
    out = []
    for line in tty_lines:
        head, message = line.split(" ", 1)
        out.append('time="2020-02-20T10:01:%02d+01:00" level=%s msg=%s\n' % (int(head[5:9]) % 60, LEVELS[head[:4]], go_quote(message.strip())))
    return "".join(out)


def coloured(tty_lines: list[str]) -> str:
    """The same lines as they reach a terminal: the level in colour (logrus printColored)."""
    colours = {"INFO": 36, "WARN": 33, "ERRO": 31, "FATA": 31}
    return "".join("\x1b[%dm%s\x1b[0m%s\n" % (colours[line[:4]], line[:4], line[4:]) for line in tty_lines)


SAMPLE_14 = sample("14")
SAMPLE_15 = sample("15")
FATAL_14 = (
    "[workerPlane] Failed to bring up Worker Plane: [Failed to create [kube-proxy] container on host [34.253.208.147]: "
    "Failed to create Docker container [kube-proxy] on host [34.253.208.147]: <nil>]"
)
CAUSE_14 = "Failed to create Docker container [kube-proxy] on host [54.194.135.20]: Error response from daemon: Duplicate mount point: /lib/modules"
FATAL_15_FIXED = (
    "[workerPlane] Failed to bring up Worker Plane: [Failed to create [kube-proxy] container on host [x]: "
    "Failed to create Docker container [kube-proxy] on host [x]: Error response from daemon: Duplicate mount point '/lib/modules']"
)


@pytest.mark.parametrize("layout", [lambda lines: "\n".join(lines) + "\n", file_layout, coloured], ids=["terminal", "file", "terminal-colour"])
def test_sample_14_rke_1_0_fatal_lost_its_cause_which_the_warnings_hold(layout):
    found = summarize(layout(SAMPLE_14), 1)
    assert found["ok"] is False
    assert found["fatal"] == FATAL_14
    assert found["cause"] == [CAUSE_14]  # three identical warnings, once
    assert found["message"] == (
        "rke's fatal error: " + FATAL_14 + "\nThat message lost its error (': <nil>', as rke v1.0.x prints it); rke's earlier warnings say: " + CAUSE_14
    )


@pytest.mark.parametrize("layout", [lambda lines: "\n".join(lines) + "\n", file_layout], ids=["terminal", "file"])
def test_sample_15_rke_1_1_fatal_holds_the_cause(layout):
    # Line 2 alone: the run on rke v1.1.0-rc11, after the fix that keeps Docker's error.
    found = summarize(layout(SAMPLE_15[1:]), 1)
    assert found["fatal"] == FATAL_15_FIXED
    assert found["cause"] == []
    assert found["message"] == "rke's fatal error: " + FATAL_15_FIXED
    # Line 1 alone: rke v1.0.4's fatal line, with no warning posted above it: the cause is lost, nothing invented.
    found = summarize(layout(SAMPLE_15[:1]), 1)
    assert found["fatal"].endswith("on host [x]: <nil>]")
    assert found["cause"] == []


@pytest.mark.parametrize(
    ("line", "level", "message"),
    [
        ('time="2024-05-01T12:00:03Z" level=fatal msg="[workerPlane] Failed to upgrade Worker Plane: [host [n1] not ready]"', "fatal", None),
        ('time="2024-05-01T12:00:03+02:00" level=warning msg="Failed to create Docker container [kube-proxy] on host [n1]: boom"', "warning", None),
        ('time="2024-05-01T12:00:03Z" level=info msg=Done', "info", "Done"),
        (
            'time="2024-05-01T12:00:03Z" level=fatal msg="Failed to parse: \\"x\\" \\\\ y\\nsecond line\\t\\x41"',
            "fatal",
            'Failed to parse: "x" \\ y\nsecond line\tA',
        ),
        ('time="2024-05-01T12:00:03Z" level=error msg="Failed to upgrade hosts: n1 with error x" host=n1', "error", "Failed to upgrade hosts: n1 with error x"),
        ("FATA[0012] Cluster must have at least one etcd plane host                    ", "fatal", "Cluster must have at least one etcd plane host"),
    ],
)
def test_parse_both_layouts(line, level, message):
    entries, other = parse(line + "\n")
    assert other == []
    assert entries[0][0] == level
    if message is None:
        message = line.split('msg="', 1)[1][:-1]
    assert entries[0][1] == message


def test_a_terminal_message_over_several_lines_is_one_message():
    entries, other = parse("INFO[0001] Building Kubernetes cluster\nFATA[0002] Failed: first\nsecond\n")
    assert entries == [("info", "Building Kubernetes cluster"), ("fatal", "Failed: first\nsecond")]
    assert other == []


def test_success_needs_exit_code_zero_and_the_success_line_last():
    success = 'time="2024-05-01T12:00:00Z" level=info msg="Building Kubernetes cluster"\ntime="2024-05-01T12:00:09Z" level=info msg="%s"\n' % SUCCESS
    assert summarize(success, 0)["ok"] is True
    assert summarize(success, 0)["message"] == "rke up finished: " + SUCCESS
    assert summarize(success, 1)["ok"] is False
    assert summarize(success + 'time="2024-05-01T12:00:10Z" level=info msg="[addons] Executing deploy job"\n', 0)["ok"] is False
    cut = summarize(success.splitlines()[0] + "\n", 0)
    assert cut["ok"] is False
    assert cut["message"] == "rke exited with code 0 but its last message is not %r\nrke's last message: Building Kubernetes cluster" % SUCCESS


def test_synthetic_fatal_in_the_file_layout():
    text = (
        'time="2024-05-01T12:00:00Z" level=info msg="Running RKE version: v1.6.3"\n'
        'time="2024-05-01T12:00:01Z" level=warning msg="[dialer] Failed to dial ssh using address [10.0.0.12:22]"\n'
        'time="2024-05-01T12:00:02Z" level=fatal msg="Cluster must have at least one etcd plane host: '
        'failed to connect to the following etcd host(s) [10.0.0.12]"\n'
    )
    found = summarize(text, 1)
    assert found["fatal"] == "Cluster must have at least one etcd plane host: failed to connect to the following etcd host(s) [10.0.0.12]"
    assert found["cause"] == []  # the fatal message holds its cause: no warning is repeated
    assert found["message"] == "rke's fatal error: " + found["fatal"]


def test_without_a_fatal_line_the_last_warnings_and_message_are_named():
    text = (
        'time="2024-05-01T12:00:00Z" level=info msg="Initiating Kubernetes cluster"\n'
        'time="2024-05-01T12:00:01Z" level=warning msg="one"\n'
        'time="2024-05-01T12:00:01Z" level=error msg="two"\n'
        'time="2024-05-01T12:00:02Z" level=info msg="[network] Deploying port listener containers"\n'
    )
    found = summarize(text, 137)
    assert found["message"] == (
        "rke ended with exit code 137 and no fatal message\nrke's last warnings and errors: one; two\n"
        "rke's last message: [network] Deploying port listener containers"
    )


def test_output_that_is_not_rke_s_log():
    assert summarize("/bin/sh: 1: rke: not found\n", 127)["message"] == (
        "rke ended with exit code 127 and no fatal message\nrke logged nothing; its output begins: /bin/sh: 1: rke: not found"
    )
    assert summarize("", 1)["message"] == "rke ended with exit code 1 and no fatal message\nrke printed nothing"
    panic = summarize("panic: runtime error: invalid memory address or nil pointer dereference\ngoroutine 1 [running]:\n", 2)
    assert panic["fatal"] == "panic: runtime error: invalid memory address or nil pointer dereference"


def test_lost_cause_patterns_match_the_failing_step_whatever_is_in_brackets():
    (pattern,) = lost_cause_patterns(FATAL_14)
    assert re.match(pattern, CAUSE_14).group("cause") == "Error response from daemon: Duplicate mount point: /lib/modules"
    assert not re.match(pattern, "Failed to create Docker container [kube-proxy] on host [n1]: <nil>")
    assert not re.match(pattern, "Can't start Docker container [kube-proxy] on host [n1]: x")
    assert lost_cause_patterns("no nil here") == []


def test_nothing_secret_or_overlong_is_shown():
    text = (
        'time="2024-05-01T12:00:00Z" level=fatal msg="Failed to pull image [https://robot:s3cret@registry.example/x]: '
        '-----BEGIN RSA PRIVATE KEY-----\\nMIIE\\n-----END RSA PRIVATE KEY-----"\n'
    )
    found = summarize(text, 1)
    assert "s3cret" not in found["message"]
    assert "MIIE" not in found["message"]
    assert "https://***@registry.example/x" in found["message"]
    assert len(mask("x" * 5000)) == 600

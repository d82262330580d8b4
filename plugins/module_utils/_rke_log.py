# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the output of `rke up` (private to the collection): did it succeed, and if not, why.

Plain functions over text, tested without rke. Python 3.6 syntax, like every module_utils file of the collection.

rke logs with logrus' default TextFormatter to STDOUT (docs/research/rke-kube-proxy.md, A7), in one of two layouts:
  * on a terminal:           FATA[0085] [workerPlane] Failed to bring up Worker Plane: [...]
    (4 upper-case letters of the level, in colour, seconds since start, the message padded to 44 characters);
  * redirected to a file or a pipe, as the role runs it:
                             time="2024-05-01T12:00:03Z" level=fatal msg="[workerPlane] Failed to ..."
    (key=value pairs; a value with anything but [A-Za-z0-9-._/@^+] is quoted with Go's %q).
A failure ends in logrus.Fatal (level fatal, exit code 1); success ends with rke's last message
"Finished building Kubernetes cluster successfully" (cmd/up.go ClusterUp, every tag v1.0.16 to v1.6.3).
rke v1.0.x lost Docker's error in the fatal line ("...: <nil>", A8) and kept it only in earlier WARN lines
(tests/data/samples/14-*): the cause is then taken from those.

Nothing here repeats a whole line blindly: the summary holds rke's fatal message, the earlier messages that give its
cause, or rke's last message, each shortened, with URL passwords and private keys masked.
"""

import re
from typing import Dict, List, Optional, Tuple

SUCCESS = "Finished building Kubernetes cluster successfully"

# logrus' TTY layout: level abbreviations (printColored: strings.ToUpper(level.String())[0:4]).
_TTY_LEVELS = {"PANI": "panic", "FATA": "fatal", "ERRO": "error", "WARN": "warning", "INFO": "info", "DEBU": "debug", "TRAC": "trace"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TTY = re.compile(r"^(PANI|FATA|ERRO|WARN|INFO|DEBU|TRAC)\[[0-9]+\] ?(.*)$")
# logrus' text layout: key=value, the value bare or Go-quoted.
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_TEXT_START = re.compile(r'^time=("(?:[^"\\]|\\.)*"|\S+) level=')
_GO_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)")
_GO_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'"}
_LEVEL_NAMES = {"warn": "warning"}
# Where a message lost its cause: Go's fmt of a nil error.
_NIL = ": <nil>"
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
# Masked in anything shown: a URL's user and password, a private key block.
_URL_USER = re.compile(r"(://)[^/\s@]+@")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL)
MAX_SHOWN = 600


def _unquote(value: str) -> str:
    """A logrus value: Go's %q undone when quoted, else as is."""
    if len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        return value

    def escape(found):
        code = found.group(1)
        if code[0] in "xuU" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code[0] in "01234567" and len(code) == 3:
            return chr(int(code, 8))
        return _GO_SIMPLE.get(code, "\\" + code)

    return _GO_ESCAPE.sub(escape, value[1:-1])


def parse(text: str) -> Tuple[List[Tuple[str, str]], List[str]]:
    """([(level, message), ...] in order, [lines that are not rke's log]) of rke's output, in either layout.

    Levels are logrus' names (info, warning, error, fatal, panic, debug, trace). On a terminal a message with line
    breaks goes on over lines without a level: they are joined to it (the text layout quotes line breaks as \\n).
    """
    entries = []  # type: List[Tuple[str, str]]
    other = []  # type: List[str]
    last_was_tty = False
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        tty = _TTY.match(line)
        if tty:
            entries.append((_TTY_LEVELS[tty.group(1)], tty.group(2).rstrip()))
            last_was_tty = True
        elif _TEXT_START.match(line):
            pairs = {key: _unquote(value) for key, value in _PAIR.findall(line)}
            level = pairs.get("level", "info").lower()
            entries.append((_LEVEL_NAMES.get(level, level), pairs.get("msg", "").strip()))
            last_was_tty = False
        elif last_was_tty and line:
            level, message = entries[-1]
            entries[-1] = (level, message + "\n" + line)
        elif line:
            other.append(line)
    return entries, other


def mask(message: str) -> str:
    """A message fit to show: URL passwords and private keys masked, at most MAX_SHOWN characters."""
    message = _PRIVATE_KEY.sub("[private key masked]", message)
    message = _URL_USER.sub(r"\1***@", message)
    return message if len(message) <= MAX_SHOWN else message[: MAX_SHOWN - 3] + "..."


def _failing_step(head: str) -> str:
    """The innermost step of a wrapped error, ending where its error was: after the last ': ' and any '[' left open.

    '[workerPlane] Failed ...: [Failed to create Docker container [kube-proxy] on host [x]' ->
    'Failed to create Docker container [kube-proxy] on host [x]'
    """
    step = head[head.rfind(": ") + 2 :] if ": " in head else head
    depth = 0
    for index in range(len(step) - 1, -1, -1):
        if step[index] == "]":
            depth += 1
        elif step[index] == "[":
            if depth == 0:
                return step[index + 1 :].strip()
            depth -= 1
    return step.strip()


def lost_cause_patterns(fatal: str) -> List[str]:
    """For each error a fatal message lost (rke v1.0.x's '...: <nil>'), a pattern of the earlier line that has it.

    'Failed to create Docker container [kube-proxy] on host [34.253.208.147]: <nil>' gives the pattern of
    'Failed to create Docker container [...] on host [...]: <cause>': any text in brackets, since the host differs
    between the WARN and FATA lines of samples/14 as posted.
    """
    patterns = []
    for head in fatal.split(_NIL)[:-1]:
        step = _failing_step(head)
        if step:
            parts = _BRACKETED.split(step)
            patterns.append("^" + r"\[[^\[\]]*\]".join(re.escape(part) for part in parts) + ": (?!<nil>)(?P<cause>.+)$")
    return patterns


def summarize(text: str, rc: Optional[int]) -> Dict[str, object]:
    """What `rke up` said about itself, for the operator.

    ok: exit code 0 and the success line as rke's last message. fatal: the fatal message (either layout; a Go
    panic's first line too). cause: when the fatal message lost its error (': <nil>'), the earlier WARN/ERRO
    messages of the step that failed (else the last three); without a fatal message, the last three WARN/ERRO
    messages. last_message: rke's last message. message: all of it in words, for a failure message.
    """
    entries, other = parse(text)
    last = entries[-1][1] if entries else ""
    fatal = ""
    for level, message in entries:
        if level in ("fatal", "panic"):
            fatal = message
    if not fatal:
        fatal = next((line for line in other if line.startswith("panic: ")), "")
    ok = rc == 0 and last == SUCCESS and not fatal
    warnings = []  # type: List[str]
    for level, message in entries:
        if level in ("warning", "error") and message not in warnings:
            warnings.append(message)
    cause = []  # type: List[str]
    if fatal and _NIL in fatal:
        patterns = [re.compile(pattern, re.DOTALL) for pattern in lost_cause_patterns(fatal)]
        cause = [message for message in warnings if any(pattern.match(message) for pattern in patterns)] or warnings[-3:]
    elif not fatal and not ok:
        cause = warnings[-3:]
    summary = dict(ok=ok, rc=rc, fatal=mask(fatal), cause=[mask(message) for message in cause[:5]], last_message=mask(last))
    summary["message"] = describe(summary, bool(entries), other)
    return summary


def describe(summary: Dict[str, object], logged: bool, other: List[str]) -> str:
    """The summary in words: what failed, then why."""
    if summary["ok"]:
        return "rke up finished: " + SUCCESS
    parts = []
    if summary["fatal"]:
        parts.append("rke's fatal error: %s" % summary["fatal"])
        if summary["cause"]:
            parts.append("That message lost its error (': <nil>', as rke v1.0.x prints it); rke's earlier warnings say: %s" % "; ".join(summary["cause"]))
        return "\n".join(parts)
    if summary["rc"] == 0:
        parts.append("rke exited with code 0 but its last message is not %r" % SUCCESS)
    else:
        parts.append("rke ended with exit code %s and no fatal message" % summary["rc"])
    if summary["cause"]:
        parts.append("rke's last warnings and errors: %s" % "; ".join(summary["cause"]))
    if logged:
        parts.append("rke's last message: %s" % summary["last_message"])
    elif other:
        parts.append("rke logged nothing; its output begins: %s" % mask(other[0]))
    else:
        parts.append("rke printed nothing")
    return "\n".join(parts)

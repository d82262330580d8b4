# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kube-proxy's log as docker keeps it, for kube_proxy_info: which proxier kube-proxy says it uses, why it refused
IPVS, its recent errors, and which part of the log is its current start's (private to the collection).

Plain functions over text (docker inspect's times, docker logs), tested without a node.
Runs on the nodes: Python 3.6 syntax at most (no ``X | None``, no ``list[str]`` at run time, no dataclasses).

The authority on the mode is kube-proxy's metrics endpoint, /proxyMode (_kube_proxy_probes). Its log adds the
evidence and the reasons: the proxier line is printed once, within the first seconds of a start, so it is read from
the log since the container's current start (a long-running kube-proxy at --v=2 logs continuously, and the line
scrolls out of any tail); recent errors come from the tail of that start.
"""

import calendar
import re
from typing import Dict, List, Optional, Tuple

# What kube-proxy prints, by Kubernetes version (docs/research/rke-kube-proxy.md, B2):
#   1.20 to 1.22 (klog, unstructured): "Using ipvs Proxier."; on failure "Can't use the IPVS proxier: <err>",
#                 "Can't use ipvs proxier, trying iptables proxier" (V(1)), then "Using iptables Proxier."
#   1.23 to 1.25 (structured):         "Using ipvs Proxier"; "Can't use the IPVS proxier" err="<err>", then
#                                      "Using iptables Proxier"
#   1.26 and later: no fallback; the error "can't use the IPVS proxier: <err>" ends kube-proxy (for example
#                 "Error running ProxyServer" err="can't use the IPVS proxier: ..."). From 1.27 <err> is "Ipvs not
#                 supported", "Ipvs not supported by the kernel", an ipset version, or the error of a dummy virtual
#                 server kube-proxy creates as a test, logged before as "Could not create dummy VS" err=... scheduler=...
MODE_LINES = (
    ("ipvs", re.compile(r"Using ipvs Proxier")),
    ("iptables", re.compile(r"Using iptables Proxier")),
    # Lower case and a colon: the error 1.26 and later exit with (1.20 to 1.22 fall back with "Can't use the ...: ").
    ("refused", re.compile(r"can't use the IPVS proxier: ")),
)
REASON_LINES = (
    re.compile(r"Can't use ipvs proxier, trying iptables proxier"),
    re.compile(r"can't use the IPVS proxier", re.IGNORECASE),
    re.compile(r"IPVS proxier will not be used"),
    re.compile(r"can't determine whether to use ipvs proxy"),
    re.compile(r"Could not create dummy VS"),
    re.compile(r"Dummy VS not created"),
)
_MISSING_MODULES = re.compile(r"following required kernel modules are not loaded: \[([^\]]*)\]")
_IPSET = re.compile(r"((?:error getting )?ipset version.*)$", re.IGNORECASE)
_ERR_UNSTRUCTURED = re.compile(r"[Cc]an't use the IPVS proxier: (.*)$")
_KLOG_ERROR = re.compile(r"^[EF]\d{4} ")
_LOGRUS_ERROR = re.compile(r"\blevel=(?:error|fatal)\b")
# What differs between two lines of the same error: klog's date, time and thread, logrus' time.
_KLOG_HEADER = re.compile(r"^([EF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ ")
_LOGRUS_TIME = re.compile(r'^time="[^"]*" ')
# docker logs --timestamps: RFC 3339 with nanoseconds, then a space, then the line.
_DOCKER_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ?(.*)$")
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|([+-])(\d\d):(\d\d))$")
# How long before its StartedAt a run's first lines may be stamped (see log_since).
START_MARGIN_NS = 1000000000


def docker_time_ns(text: str) -> Optional[int]:
    """Nanoseconds since the epoch of a time docker prints (2024-05-01T12:00:03.123456789Z); None for Go's zero
    time (0001-01-01T00:00:00Z, a container that never stopped) or anything unreadable."""
    found = _TIME.match((text or "").strip())
    if not found or found.group(1) == "0001":
        return None
    year, month, day, hour, minute, second = (int(found.group(index)) for index in range(1, 7))
    fraction = (found.group(7) or "")[:9].ljust(9, "0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if found.group(8) != "Z":
        offset = int(found.group(10)) * 3600 + int(found.group(11)) * 60
        seconds -= offset if found.group(9) == "+" else -offset
    return seconds * 1000000000 + int(fraction)


def log_since(started_at: str, finished_at: str) -> Optional[str]:
    """The --since of `docker logs` for the container's current start, or None to read its log from the beginning.

    docker stamps a line when it reads it from the container's output, records StartedAt once the process runs, and
    FinishedAt as the moment the process exited, then waits for the last lines to be read (moby daemon/monitor.go
    handleContainerExit, container/state.go SetRunning/SetStopped): a run's first lines can be stamped a little before
    its StartedAt, the previous run's last lines a little after its FinishedAt. So: a container that never stopped has
    had one start, its whole log; one that runs again after stopping, from a second before its start but never
    before the middle of the gap since it stopped; one that stopped after its last start (exited, or waiting to
    restart), from a second before that start.
    """
    started = docker_time_ns(started_at)
    finished = docker_time_ns(finished_at)
    if started is None or finished is None:
        return None
    margin = min(START_MARGIN_NS, (started - finished) // 2) if finished < started else START_MARGIN_NS
    return "%d.%09d" % divmod(started - margin, 1000000000)


def split_docker_log(output: str) -> Tuple[List[str], List[str]]:
    """(log lines without docker's time stamps, in time order; other lines, such as docker's own errors)."""
    stamped = []  # type: List[Tuple[int, int, str]]
    other = []  # type: List[str]
    # Lines end with \n only: a line of kube-proxy's may hold a \r or a form feed, which splitlines() would cut at.
    for index, line in enumerate(output.split("\n")):
        found = _DOCKER_STAMP.match(line)
        if found:
            stamped.append((docker_time_ns(found.group(1)) or 0, index, found.group(2)))
        elif line.strip():
            other.append(line.strip())
    return [line for _time, _index, line in sorted(stamped)], other


def _klog_value(line: str, key: str) -> str:
    found = re.search(r'\b%s="((?:[^"\\]|\\.)*)"' % key, line)
    return found.group(1).replace('\\"', '"').replace("\\\\", "\\") if found else ""


def _refusal_error(line: str) -> str:
    """The error text of a fallback or refusal line, in either rendering."""
    for key in ("err", "error"):
        value = _klog_value(line, key)
        if value:
            break
    else:
        found = _ERR_UNSTRUCTURED.search(line)
        value = found.group(1).strip() if found else ""
    return value.split("can't use the IPVS proxier: ", 1)[-1].strip()


def read_log(text: str) -> Dict[str, object]:
    """The proxier kube-proxy said it uses (the last one, should the text cover restarts), and its reasons.

    mode: ipvs, iptables, refused (1.26 and later exit) or none; mode_line; fallback_lines, the last five lines that
    explain a fallback or refusal; missing_modules and ipset_problem, the two reasons up to 1.26; reasons, the others
    in words (1.27 and later: "Ipvs not supported", a dummy virtual server that could not be created).
    """
    mode, mode_line = "none", ""
    explained = []  # type: List[str]
    for line in text.splitlines():
        for name, pattern in MODE_LINES:
            if pattern.search(line):
                mode, mode_line = name, line.strip()
        if any(pattern.search(line) for pattern in REASON_LINES):
            explained.append(line.strip())
    missing = []  # type: List[str]
    ipset = ""
    reasons = []  # type: List[str]
    for line in explained:
        found = _MISSING_MODULES.search(line)
        if found:
            missing = found.group(1).split()
            continue
        ipset_problem = _IPSET.search(line)
        if ipset_problem:
            ipset = ipset_problem.group(1).strip().rstrip('"').replace('\\"', '"')
            continue
        if "Could not create dummy VS" in line:
            scheduler = _klog_value(line, "scheduler")
            reason = "kube-proxy could not create its test virtual server%s: %s" % (
                " with scheduler %s (can the kernel load ip_vs_%s?)" % (scheduler, scheduler) if scheduler else "",
                _klog_value(line, "err") or "no error given",
            )
        elif "Dummy VS not created" in line:
            reason = "kube-proxy's test virtual server was not created: IPVS does not work in this kernel"
        else:
            reason = _refusal_error(line)
        if reason and not any(reason in known for known in reasons):
            reasons.append(reason)
    return {
        "mode": mode,
        "mode_line": mode_line,
        "fallback_lines": explained[-5:],
        "missing_modules": missing,
        "ipset_problem": ipset,
        "reasons": reasons,
    }


def recent_errors(text: str, limit: int = 5) -> List[str]:
    """The last errors kube-proxy logged (klog E and F lines, logrus level=error and fatal), each error once (its
    latest line: a crash loop repeats one error with a new time each run)."""
    latest = {}  # type: Dict[str, Tuple[int, str]]
    for index, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if _KLOG_ERROR.match(line) or _LOGRUS_ERROR.search(line):
            latest[_KLOG_HEADER.sub("", _LOGRUS_TIME.sub("", line))] = (index, line)
    found = [line for _index, line in sorted(latest.values())]
    return found[-limit:] if limit > 0 else []

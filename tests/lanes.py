"""Run `make test`'s targets in lanes at once: each lane runs its targets in order, the lanes side by side.

    python3 tests/lanes.py 'host:10=lint sanity units' 'e2e=e2e' 'vms:5=vm-leftovers molecule'

Why: most of `make test` waits on software-emulated VMs (QEMU TCG), which leave part of this 2-core machine idle, while
lint, sanity and the unit tests need no VM; run one after the other, the targets overrun the budget (docs/testing.md
has the figures). The lanes share nothing but the caches that `make test` prepares before it starts them (virtual
environments, lab images, the Docker and libvirt daemons), and each VM test picks its own ports.

`NAME:N=...` runs the lane at niceness N (nice(1); what it starts inherits it). The lane with the longest path (the
end-to-end tests) keeps niceness 0, so the others take the CPU time it leaves: with all lanes equal, the 2 cores are
shared by every VM and sanity at once, and the end-to-end tests' first `enable` takes several times as long. What leaves
the lane's session would lose the niceness, since this kernel shares the CPU between sessions first (sched_autogroup):
the lab VMs (QEMU's -daemonize calls setsid()) and the set-up test's container keep it explicitly (tests/lab/lab.py:
keep_niceness, docker_niceness_flags); otherwise each niced VM weighs as much as an end-to-end one.

Each target is its own `make` run, so a failed target does not hide the ones after it. Every line a lane prints is
shown at once, prefixed with the lane's name and the minutes since the start, and kept in build/lanes/<lane>.log. At
the end: one line per target (lane, exit status, start and minutes), one per lane, and for a lane that failed the
last lines of its log again, so that the end of the CI log names every failure. The exit status is non-zero when any
target failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAIL = 120


def run_lane(name: str, niceness: int, targets: list[str], log: Path, results: dict, lock: threading.Lock, t0: float) -> None:
    with log.open("w") as handle:
        for target in targets:
            started = time.monotonic()
            # stdin: a /dev/null of the lane's own. A shared one is one open file, and O_NONBLOCK set on it by one
            # lane's tools (ssh) is seen by the others: ansible-doc then refused to run ("Ansible requires blocking
            # IO on stdin/stdout/stderr. Non-blocking file handles detected: <stdin>").
            process = subprocess.Popen(
                ["nice", "-n", str(niceness), "make", "--no-print-directory", target],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            for line in process.stdout:
                handle.write(line)
                handle.flush()
                with lock:
                    sys.stdout.write(f"[{name} {(time.monotonic() - t0) / 60:4.1f}] {line}")
                    sys.stdout.flush()
            code = process.wait()
            results[(name, target)] = (code, started - t0, time.monotonic() - started)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the machine's CPUs so far (/proc/stat's first line; steal counts as busy
    elsewhere, so it is left out of both)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, idle, iowait, irq, softirq = fields
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait


def parse(spec: str) -> tuple[str, int, list[str]] | None:
    head, _sep, targets = spec.partition("=")
    name, _colon, niceness = head.partition(":")
    if not name or not targets.split() or (niceness and not niceness.isdigit()):
        return None
    return name, int(niceness or 0), targets.split()


def main(argv: list[str]) -> int:
    lanes = []
    for spec in argv:
        lane = parse(spec)
        if lane is None:
            print(f"lanes.py: expected LANE[:NICENESS]=target..., got {spec!r}", file=sys.stderr)
            return 2
        lanes.append(lane)
    logs = ROOT / "build" / "lanes"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    lock = threading.Lock()
    t0 = time.monotonic()
    ticks0 = cpu_ticks()
    threads = [threading.Thread(target=run_lane, args=(name, niceness, targets, logs / f"{name}.log", results, lock, t0)) for name, niceness, targets in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [name for name, _niceness, targets in lanes if any(results[(name, target)][0] != 0 for target in targets)]
    for name in failed:
        lines = (logs / f"{name}.log").read_text(errors="replace").splitlines()
        print(f"\n===== lane {name} failed: the last {min(TAIL, len(lines))} lines of build/lanes/{name}.log =====")
        print("\n".join(lines[-TAIL:]))
    print("\n===== targets (minutes since the start) =====")
    for name, _niceness, targets in lanes:
        for target in targets:
            code, start, seconds = results[(name, target)]
            print(f"{name:6} {target:18} {'ok' if code == 0 else f'FAILED (exit {code})':16} from {start / 60:5.1f}  {seconds / 60:5.1f} min")
    busy, total = (end - start for end, start in zip(cpu_ticks(), ticks0))
    cores = os.cpu_count() or 1
    minutes = (time.monotonic() - t0) / 60
    share = busy / max(total, 1)
    print(f"\nCPU: busy {100 * share:.0f}% of the run: {share * cores * minutes:.1f} of {cores} cores x {minutes:.1f} min")
    print("\n===== lanes =====")
    for name, niceness, targets in lanes:
        ends = [results[(name, target)][1] + results[(name, target)][2] for target in targets]
        status = "FAILED" if name in failed else "ok"
        print(f"{name:6} nice {niceness:2}  {status:7} {max(ends) / 60:5.1f} min  {' '.join(targets)}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))

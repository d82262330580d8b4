"""Run `make test`'s targets in lanes at once: each lane runs its targets in order with make, the lanes side by side.

    python3 tests/lanes.py 'host=lint sanity units' 'e2e=e2e' 'vms=vm-leftovers molecule'

Why: most of `make test` waits on software-emulated VMs (QEMU TCG), which leave part of this 2-core machine idle, while
lint, sanity and the unit tests need no VM. Run one after the other, the targets took about 78 minutes; the budget is
45 (docs/testing.md has the figures). The lanes share nothing but the caches that `make test` prepares before it
starts them (virtual environments, lab images, the Docker and libvirt daemons), and each VM test picks its own ports.

Every line a lane prints is shown at once, prefixed with the lane's name, and kept in build/lanes/<lane>.log. At the
end: one line per lane (targets, exit status, minutes) and, for a lane that failed, the last lines of its log again,
so that the end of the CI log names every failure. The exit status is non-zero when any lane failed.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAIL = 120


def run_lane(name: str, targets: list[str], log: Path, results: dict, lock: threading.Lock) -> None:
    started = time.monotonic()
    with log.open("w") as handle:
        # stdin: a /dev/null of the lane's own. A shared one is one open file, and O_NONBLOCK set on it by one
        # lane's tools (ssh) is seen by the others: ansible-doc then refused to run ("Ansible requires blocking
        # IO on stdin/stdout/stderr. Non-blocking file handles detected: <stdin>").
        process = subprocess.Popen(
            ["make", "--no-print-directory", *targets],
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
                sys.stdout.write(f"[{name}] {line}")
                sys.stdout.flush()
        code = process.wait()
    results[name] = (code, time.monotonic() - started)


def main(argv: list[str]) -> int:
    lanes = []
    for spec in argv:
        name, _sep, targets = spec.partition("=")
        if not name or not targets.split():
            print(f"lanes.py: expected LANE=target..., got {spec!r}", file=sys.stderr)
            return 2
        lanes.append((name, targets.split()))
    logs = ROOT / "build" / "lanes"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=run_lane, args=(name, targets, logs / f"{name}.log", results, lock)) for name, targets in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [name for name, _targets in lanes if results[name][0] != 0]
    for name in failed:
        lines = (logs / f"{name}.log").read_text(errors="replace").splitlines()
        print(f"\n===== lane {name} failed (exit {results[name][0]}): the last {min(TAIL, len(lines))} lines of build/lanes/{name}.log =====")
        print("\n".join(lines[-TAIL:]))
    print("\n===== lanes =====")
    for name, targets in lanes:
        code, seconds = results[name]
        print(f"{name:6} {'ok' if code == 0 else f'FAILED (exit {code})':16} {seconds / 60:5.1f} min  {' '.join(targets)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

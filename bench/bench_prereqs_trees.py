"""The prereqs role's converge on two trees of this repository, compared in one run on one lab VM.

`make bench-prereqs` times one converge per node count, and the package step alone (apt-get update and install on an
emulated VM, the same command in every tree) varies by several seconds from one run to the next: a difference
between two trees measured in two separate runs can be that noise. This script takes the trees from git
(`git archive <rev>`: committed content only), boots one VM, and runs the role's converge from each tree in turn,
`--rounds` times (A, B, A, B, ...), putting the node back to its fresh state after each converge (bench_prereqs'
UNDO). Ansible's profile_tasks callback splits each converge into the package step and the role's other tasks.
It prints the median of each, per tree, and the ratio B / A.

    python bench/bench_prereqs_trees.py c84879c HEAD --rounds 3     # make bench-prereqs-trees A=c84879c B=HEAD
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402
import bench_prereqs  # noqa: E402
import lab  # noqa: E402

PACKAGE_TASK = "Install ipset and ipvsadm"
# profile_tasks' summary lines: "<role> : <task name> ---- 12.34s".
PROFILE_LINE = re.compile(r"^(?P<task>rkeops\.ipvs\.prereqs : .*?) -+ (?P<seconds>[0-9.]+)s$")


def export_tree(rev: str, into: Path) -> Path:
    """The committed tree of `rev` as an Ansible collections path (ansible_collections/rkeops/ipvs)."""
    tree = into / "ansible_collections" / "rkeops" / "ipvs"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return into


def converge(work: Path, inventory: Path, collections: Path) -> tuple[float, float, float]:
    """(wall time, package step, the role's other tasks) of one converge."""
    started = time.monotonic()
    done = ansible_cli.run("-i", inventory, work / "site.yml", collections=collections, env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"})
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"ansible-playbook failed with {collections}:\n" + done.stdout[-3000:])
    package = other = 0.0
    for line in done.stdout.splitlines():
        found = PROFILE_LINE.match(line.strip())
        if found:
            seconds = float(found.group("seconds"))
            if PACKAGE_TASK in found.group("task"):
                package += seconds
            else:
                other += seconds
    return elapsed, package, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="the baseline revision (git rev)")
    parser.add_argument("b", help="the revision compared with it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", default="bookworm", choices=lab.SUITES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rkeops-bench-trees-") as tmp:
        work = Path(tmp)
        (work / "site.yml").write_text(bench_prereqs.PLAYBOOK)
        trees = {args.a: export_tree(args.a, work / "a"), args.b: export_tree(args.b, work / "b")}
        image = lab.build_image(args.image)
        vm = lab.boot(image, work / "vms", "trees1", 1024)
        results: dict[str, list[tuple[float, float, float]]] = {rev: [] for rev in trees}
        try:
            lab.wait_ssh(vm, 300)
            inventory = work / "inventory.json"
            bench_prereqs.inventory([vm], inventory)
            # Warm-up, not measured: the disk caches as both trees will find them.
            bench_prereqs.on_nodes([vm], bench_prereqs.BASELINE)
            bench_prereqs.on_nodes([vm], bench_prereqs.UNDO)
            for round_ in range(args.rounds):
                for rev, collections in trees.items():
                    results[rev].append(converge(work, inventory, collections))
                    bench_prereqs.on_nodes([vm], bench_prereqs.UNDO)
                    print(f"round {round_ + 1}, {rev}: {results[rev][-1][0]:.1f} s", file=sys.stderr)
        finally:
            lab.stop(work / "vms", "trees1")
    print(f"| tree | converge (median of {args.rounds}) | package step | the role's other tasks | every converge |")
    print("|---|---:|---:|---:|---|")
    medians = {}
    for rev, rows in results.items():
        medians[rev] = [statistics.median(row[column] for row in rows) for column in range(3)]
        every = ", ".join(f"{row[0]:.1f}" for row in rows)
        print(f"| {rev} | {medians[rev][0]:.1f} s | {medians[rev][1]:.1f} s | {medians[rev][2]:.1f} s | {every} |")
    a, b = medians[args.a], medians[args.b]
    print(f"{args.b} / {args.a}: converge {b[0] / a[0]:.2f}, package step {b[1] / a[1]:.2f}, the role's other tasks {b[2] / a[2]:.2f}")


if __name__ == "__main__":
    main()

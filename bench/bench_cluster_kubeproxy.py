"""Benchmark: cluster_kubeproxy's patch against a plain ruamel.yaml round trip of the same file.

For generated cluster.yml files of 10, 1,000 and 5,000 nodes, prints in one run the best-of-N time of
  - patch: what the module does with the text (parse with marks, plan, splice, read the result back), and
  - ruamel round trip: ruamel.yaml's round-trip load plus dump of the same text,
and their ratio. Goal: at 5,000 nodes, ratio <= 1.0 and patch under 1 s.

Run: make bench   (or: python bench/bench_cluster_kubeproxy.py [--repeat N])
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LINK_BASE = os.path.join(HERE, "..", "build", "pytest-collections")


def import_patch():
    link = os.path.join(LINK_BASE, "ansible_collections", "rkeops", "ipvs")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.abspath(os.path.join(HERE, "..")), link)
    sys.path.insert(0, LINK_BASE)
    from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_patch import build_request, patch  # noqa: PLC0415

    return build_request, patch


def cluster_yml(nodes):
    """A cluster.yml like RKE users write: commented nodes, labels, services, addons."""
    lines = ["# generated for the benchmark", "cluster_name: bench", "ssh_key_path: ~/.ssh/id_rsa", "nodes:"]
    for index in range(nodes):
        roles = "[controlplane, etcd, worker]" if index < 3 else "[worker]"
        lines += [
            "  # rack %d" % (index % 40),
            "  - address: 10.%d.%d.%d" % (index // 65536, (index // 256) % 256, index % 256),
            "    hostname_override: node-%05d" % index,
            "    user: rke",
            "    port: 22",
            "    role: %s" % roles,
            "    labels:",
            "      topology.kubernetes.io/zone: zone-%d" % (index % 3),
        ]
    lines += [
        "services:",
        "  etcd:",
        "    snapshot: true",
        "  kube-api:",
        "    service_cluster_ip_range: 10.43.0.0/16",
        "  kubelet:",
        "    extra_binds:",
        "      - /var/lib/kubelet:/var/lib/kubelet",
        "network:",
        "  plugin: canal",
        "ingress:",
        "  provider: nginx",
        "",
    ]
    return "\n".join(lines)


def best(function, repeat):
    times = []
    for _run in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is kept (default 5)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 5000])
    args = parser.parse_args()

    build_request, patch = import_patch()
    from ruamel.yaml import YAML  # noqa: PLC0415

    request = build_request({"proxy_mode": "ipvs", "ipvs_scheduler": "rr", "masquerade_all": True})

    def round_trip(text):
        yaml = YAML()
        data = yaml.load(text)
        out = io.StringIO()
        yaml.dump(data, out)
        return out.getvalue()

    print("| nodes | file size | patch (best of %d) | ruamel.yaml load+dump | ratio patch/round trip |" % args.repeat)
    print("|---:|---:|---:|---:|---:|")
    verdict = None
    for nodes in args.sizes:
        text = cluster_yml(nodes)
        result = patch(text, "bench.yml", request)
        assert result["changed"] and result["extra_args"]["proxy-mode"] == "ipvs"
        patch_time = best(lambda text=text: patch(text, "bench.yml", request), args.repeat)
        ruamel_time = best(lambda text=text: round_trip(text), max(1, min(args.repeat, 3)))
        ratio = patch_time / ruamel_time
        print("| %d | %.0f KiB | %.3f s | %.3f s | %.2f |" % (nodes, len(text) / 1024.0, patch_time, ruamel_time, ratio))
        if nodes == 5000:
            verdict = (ratio <= 1.0 and patch_time < 1.0, ratio, patch_time)
    if verdict is not None:
        ok, ratio, seconds = verdict
        print("\ngoal at 5,000 nodes (ratio <= 1.0 and patch < 1 s): %s (ratio %.2f, %.3f s)" % ("met" if ok else "NOT met", ratio, seconds))


if __name__ == "__main__":
    main()

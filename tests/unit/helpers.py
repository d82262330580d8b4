"""Independent readers for the tests: they share no code with the module under test."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

# ../shared/corpus beside the project root (CI clones the project with shared/ beside it).
CORPUS = Path(os.environ.get("RKEOPS_CORPUS", Path(__file__).resolve().parents[3] / "shared" / "corpus"))


def corpus_files(folder):
    files = sorted((CORPUS / folder).glob("*.yml"))
    if not files:
        raise RuntimeError("no corpus files in %s; set RKEOPS_CORPUS to the shared corpus folder" % (CORPUS / folder))
    return files


_KUBEPROXY_RE = re.compile(r"^( *)kubeproxy:")


def rke_view(text):
    """cluster.yml as RKE sees it: every scalar a string (PyYAML's BaseLoader, YAML 1.1)."""
    return yaml.load(text, Loader=yaml.BaseLoader)


def _mapping(value):
    # BaseLoader reads a null written as ~ or null as that text.
    return value if isinstance(value, dict) else {}


def kubeproxy(text):
    services = _mapping((rke_view(text) or {}).get("services"))
    return _mapping(services.get("kubeproxy"))


def extra_args(text):
    return _mapping(kubeproxy(text).get("extra_args"))


def _is_inside(line, indent):
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or (len(line) - len(line.lstrip(" "))) > indent


def stanza_region(lines):
    """(first, last) line indexes of the services.kubeproxy block, found by indentation alone."""
    for index, line in enumerate(lines):
        match = _KUBEPROXY_RE.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        last = index
        while last + 1 < len(lines) and _is_inside(lines[last + 1], indent):
            last += 1
        # Trailing blank lines and comments belong to whatever follows.
        while last > index and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
            last -= 1
        return index, last
    return None


def outside_stanza(text, with_new_services=False):
    """(lines outside the kubeproxy block, lines of the block): content only, endings dropped.

    ``with_new_services``: the ``services:`` line just above the block was added by the patch too.
    """
    lines = text.splitlines()
    region = stanza_region(lines)
    if region is None:
        return lines, []
    first, last = region
    if with_new_services:
        assert lines[first - 1] == "services:"
        first -= 1
    return lines[:first] + lines[last + 1 :], lines[first : last + 1]

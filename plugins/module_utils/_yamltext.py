# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A YAML file as text and as a node tree with marks: reading, node predicates, where nodes are, scalar rendering.

Private to the collection. The file is parsed once with PyYAML's composer (libyaml when available),
which gives every node its line and column; ``_yamledit`` turns changes into line splices from those marks.

Error messages built here name the file, line and column and never quote file content:
cluster.yml holds SSH keys, passwords and certificates.
"""

import contextlib
import gc
import json
import re
from typing import Optional

try:
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
    # Node tree only: no implicit tag resolution (costly in Python for every scalar); nulls are told by is_null().
    LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
except ImportError as exc:  # pragma: no cover - exercised only without PyYAML
    HAS_YAML = False
    YAML_IMPORT_ERROR = exc
    yaml = None
    MappingNode = ScalarNode = SequenceNode = object
    LOADER = None

STR_TAG = "tag:yaml.org,2002:str"
# YAML 1.1 nulls, as RKE's go-yaml v2 reads them.
_NULL_WORDS = ("", "~", "null", "Null", "NULL")
# YAML 1.1 line breaks, as PyYAML and RKE's go-yaml v2 count them.
_BREAK_RE = re.compile("\r\n|\r|\n|\x85|\u2028|\u2029")
JINJA_RE = re.compile(r"\{[{%#]")
_GO_INT_RE = re.compile(r"^(0|[1-9][0-9]*)$")


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while a large node tree is built and walked.

    A 5,000-node cluster.yml makes ~10^5 nodes; the collector rescans them again and again as they are
    allocated (60% of the patch time, measured by bench/). Nodes hold no reference cycles that need it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class YamlEditError(Exception):
    """A problem with the input file, worded for the person who owns the file."""


class Source:
    """The text of a file split into lines, each with its own line ending."""

    def __init__(self, text: str, name: str):
        self.name = name
        self.text = text
        self.lines = []
        self.endings = []
        pos = 0
        for match in _BREAK_RE.finditer(text):
            self.lines.append(text[pos : match.start()])
            self.endings.append(match.group(0))
            pos = match.end()
        if pos < len(text):
            self.lines.append(text[pos:])
            self.endings.append("")
        counts = {}
        for ending in self.endings:
            if ending:
                counts[ending] = counts.get(ending, 0) + 1
        self.newline = max(counts, key=counts.get) if counts else "\n"

    def where(self, node_or_mark) -> str:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        return "%s: line %d, column %d" % (self.name, mark.line + 1, mark.column + 1)

    def line(self, index: int) -> str:
        if 0 <= index < len(self.lines):
            return self.lines[index]
        return ""

    def text_of(self, first: int, last: int) -> str:
        """Lines first..last, each ended by a plain newline (for diffs)."""
        return "".join(self.lines[i] + "\n" for i in range(first, last + 1))


def compose(source: Source):
    """Parse the single YAML document of ``source`` into a node tree with marks."""
    if not HAS_YAML:
        raise YamlEditError("PyYAML is required to read %s" % source.name)
    hint = ""
    if JINJA_RE.search(source.text):
        hint = " The file contains '{{', '{%' or '{#': it looks like an unrendered Jinja template. Render it first and point this at the rendered file."
    try:
        return yaml.compose(source.text, Loader=LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "syntax error"
        if exc.problem and "another document" in (exc.problem + (exc.context or "")):
            what = "more than one YAML document; RKE reads cluster.yml as a single document"
        where = source.where(mark) if mark is not None else source.name
        raise YamlEditError("%s: not valid YAML: %s.%s" % (where, what, hint)) from None
    except yaml.YAMLError as exc:
        # ReaderError and friends: they name a character code and a position, no content.
        raise YamlEditError("%s: not valid YAML: %s.%s" % (source.name, exc, hint)) from None


# --------------------------------------------------------------------------- nodes


def kind(node) -> str:
    """A short name of a node's type for error messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if is_null(node):
        return "null"
    return "a scalar"


def is_null(node) -> bool:
    return isinstance(node, ScalarNode) and not node.style and node.value in _NULL_WORDS


def is_empty(node) -> bool:
    """A null written as nothing at all (``key:``), whose marks point past the key."""
    return is_null(node) and node.value == "" and not node.style


def is_block(node) -> bool:
    return isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style and bool(node.value)


def entry(mapping, name: str, last: bool = False):
    """The (key, value) nodes of ``name`` in a MappingNode, or None: the first one, or the last as rke's reader keeps."""
    found = None
    for key, value in mapping.value:
        if isinstance(key, ScalarNode) and key.value == name:
            if not last:
                return key, value
            found = key, value
    return found


def iter_nodes(node):
    """Every node below ``node`` (itself included), depth first, aliases visited once."""
    seen = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, MappingNode):
            for key, value in reversed(current.value):
                stack.append(value)
                stack.append(key)
        elif isinstance(current, SequenceNode):
            stack.extend(reversed(current.value))


def check_keys(source: Source, root) -> None:
    """Refuse mapping keys that are not scalars, as RKE's parser does."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend(child for child in node.value if not isinstance(child, ScalarNode))
            continue
        if not isinstance(node, MappingNode):
            continue
        for key, value in node.value:
            if not isinstance(value, ScalarNode):
                stack.append(value)
            if not isinstance(key, ScalarNode):
                hint = ""
                if JINJA_RE.search(source.text):
                    hint = " An unquoted '{{ ... }}' is read as a mapping: is this an unrendered Jinja template?"
                raise YamlEditError("%s: a mapping key is %s, not a plain value; RKE cannot read such a key.%s" % (source.where(key), kind(key), hint))


# --------------------------------------------------------------------------- where nodes are


def _block_scalar_keeps_trailing(source: Source, node) -> bool:
    if not isinstance(node, ScalarNode) or node.style not in ("|", ">"):
        return False
    header = source.line(node.start_mark.line)[node.start_mark.column :].split("#", 1)[0]
    return "+" in header.split(" ", 1)[0]


def last_line(source: Source, node, key=None) -> int:
    """Index of the last line that holds content of ``node`` (or of its ``key`` when it is empty)."""
    if node is None or is_empty(node):
        return last_line(source, key) if key is not None else 0
    if is_block(node):
        if isinstance(node, MappingNode):
            child_key, child_value = node.value[-1]
            return max(last_line(source, child_key), last_line(source, child_value, child_key))
        return last_line(source, node.value[-1])
    start, end = node.start_mark, node.end_mark
    last = end.line if (end.column > 0 or end.line == start.line) else end.line - 1
    last = min(last, len(source.lines) - 1)
    if not _block_scalar_keeps_trailing(source, node):
        while last > start.line and not source.line(last).strip():
            last -= 1
    return max(last, start.line)


def span(source: Source, key, value) -> tuple:
    """(first, last) line indexes of a mapping entry ``key: value``."""
    return key.start_mark.line, last_line(source, value, key)


def first_child_column(source: Source, node) -> int:
    """Column of the first key (mapping) or dash (sequence) of a block collection."""
    if isinstance(node, MappingNode):
        return node.value[0][0].start_mark.column
    return dash_column(source, node.value[0])


def dash_column(source: Source, item) -> int:
    """Column of the ``-`` that introduces a block sequence item."""
    line_index, col = item.start_mark.line, item.start_mark.column
    while line_index >= 0:
        text = source.line(line_index)
        col = min(col, len(text))
        while col > 0:
            col -= 1
            char = text[col]
            if char == "-":
                return col
            if char not in " \t":
                return item.start_mark.column
        line_index -= 1
        col = len(source.line(line_index)) if line_index >= 0 else 0
    return item.start_mark.column


# --------------------------------------------------------------------------- scalars


def _resolves_to_str(text: str) -> bool:
    resolver = yaml.resolver.Resolver()
    return resolver.resolve(ScalarNode, text, (True, False)) == STR_TAG


def plain_is_safe(text: str, allow_bool_int: bool = False) -> bool:
    """Whether ``text`` can be written as a plain scalar and read back as the same text."""
    if not text or text != text.strip() or text[0] in "-?:,[]{}#&*!|>'\"%@`":
        return False
    if ": " in text or " #" in text or text.endswith(":") or any(c in text for c in "\n\r\t\x85\u2028\u2029"):
        return False
    if not all(c.isprintable() for c in text):
        return False
    if _resolves_to_str(text):
        try:
            node = yaml.compose("k: " + text, Loader=LOADER)
        except yaml.YAMLError:
            return False
        return node.value[0][1].value == text
    return allow_bool_int and (text in ("true", "false") or bool(_GO_INT_RE.match(text)))


def render_scalar(text: str, style: Optional[str] = None, allow_bool_int: bool = True) -> str:
    """Text of a YAML scalar for ``text``; ``style`` is the quote style to keep, if any."""
    if style == "'" and all(c.isprintable() for c in text):
        return "'" + text.replace("'", "''") + "'"
    if style != '"' and plain_is_safe(text, allow_bool_int=allow_bool_int):
        return text
    return json.dumps(text, ensure_ascii=False)


def render_key(text: str) -> str:
    return render_scalar(text, allow_bool_int=False)


def entry_line(col: int, key: str, value: str) -> str:
    return "%s%s: %s" % (" " * col, render_key(key), render_scalar(value))


def item_line(col: int, value: str) -> str:
    return "%s- %s" % (" " * col, render_scalar(value, allow_bool_int=False))


def block_lines(col: int, step: int, seq_offset: int, name: str, value) -> list:
    """Lines of ``name:`` and its block value (a mapping of scalars or a list of scalars) at column ``col``."""
    if not value:
        return ["%s%s: %s" % (" " * col, name, "{}" if isinstance(value, dict) else "[]")]
    lines = ["%s%s:" % (" " * col, name)]
    if isinstance(value, dict):
        lines.extend(entry_line(col + step, k, v) for k, v in value.items())
    else:
        lines.extend(item_line(col + seq_offset, v) for v in value)
    return lines

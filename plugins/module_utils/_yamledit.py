# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Surgical, line-level edits of YAML files.

Private to the collection. The file is parsed once with PyYAML's composer (libyaml when
available), which gives every node its line and column; changes are then applied as
line-level splices, so every line that is not edited keeps its exact bytes: comments,
quoting, indentation, trailing spaces and line endings.

Error messages built here name the file, line and column and never quote file
content: cluster.yml holds SSH keys, passwords and certificates.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re

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
_JINJA_RE = re.compile(r"\{[{%#]")
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

    def __init__(self, text, name):
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

    def where(self, node_or_mark):
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        return "%s: line %d, column %d" % (self.name, mark.line + 1, mark.column + 1)

    def line(self, index):
        if 0 <= index < len(self.lines):
            return self.lines[index]
        return ""


def compose(source):
    """Parse the single YAML document of ``source`` into a node tree with marks."""
    if not HAS_YAML:
        raise YamlEditError("PyYAML is required to read %s" % source.name)
    hint = ""
    if _JINJA_RE.search(source.text):
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


def kind(node):
    """A short name of a node's type for error messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if is_null(node):
        return "null"
    return "a scalar"


def is_null(node):
    return isinstance(node, ScalarNode) and not node.style and node.value in _NULL_WORDS


def is_empty(node):
    """A null written as nothing at all (``key:``), whose marks point past the key."""
    return is_null(node) and node.value == "" and not node.style


def is_block(node):
    return isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style and bool(node.value)


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


def check_keys(source, root):
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
                if _JINJA_RE.search(source.text):
                    hint = " An unquoted '{{ ... }}' is read as a mapping: is this an unrendered Jinja template?"
                raise YamlEditError("%s: a mapping key is %s, not a plain value; RKE cannot read such a key.%s" % (source.where(key), kind(key), hint))


def _block_scalar_keeps_trailing(source, node):
    if not isinstance(node, ScalarNode) or node.style not in ("|", ">"):
        return False
    header = source.line(node.start_mark.line)[node.start_mark.column :].split("#", 1)[0]
    return "+" in header.split(" ", 1)[0]


def last_line(source, node, key=None):
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


def first_child_column(source, node):
    """Column of the first key (mapping) or dash (sequence) of a block collection."""
    if isinstance(node, MappingNode):
        return node.value[0][0].start_mark.column
    return dash_column(source, node.value[0])


def dash_column(source, item):
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


class Layout:
    """The file's own indentation habits, learnt from its block collections."""

    def __init__(self, source, root):
        self.source = source
        self.step = None
        self.seq_offset = None
        for node in iter_nodes(root):
            if not isinstance(node, MappingNode) or node.flow_style:
                continue
            for key, value in node.value:
                if not is_block(value):
                    continue
                child = first_child_column(source, value)
                if isinstance(value, MappingNode) and self.step is None:
                    if child > key.start_mark.column and value.start_mark.line > key.start_mark.line:
                        self.step = child - key.start_mark.column
                if isinstance(value, SequenceNode) and self.seq_offset is None:
                    if value.start_mark.line > key.start_mark.line:
                        self.seq_offset = max(0, child - key.start_mark.column)
            if self.step is not None and self.seq_offset is not None:
                break
        if self.step is None:
            # A file whose only nested blocks are lists: indent like its lists, else 2.
            self.step = self.seq_offset or 2
        if self.seq_offset is None:
            self.seq_offset = self.step

    def child_step(self, *containers):
        """Indent step for new children, learnt from sibling containers first."""
        for container in containers:
            if not is_block(container) or not isinstance(container, MappingNode):
                continue
            for key, value in container.value:
                if is_block(value) and isinstance(value, MappingNode):
                    child = first_child_column(self.source, value)
                    if child > key.start_mark.column:
                        return child - key.start_mark.column
        return self.step


# --------------------------------------------------------------------------- scalars


def _resolves_to_str(text):
    resolver = yaml.resolver.Resolver()
    return resolver.resolve(ScalarNode, text, (True, False)) == STR_TAG


def plain_is_safe(text, allow_bool_int=False):
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


def render_scalar(text, style=None, allow_bool_int=True):
    """Text of a YAML scalar for ``text``; ``style`` is the quote style to keep, if any."""
    if style == "'" and all(c.isprintable() for c in text):
        return "'" + text.replace("'", "''") + "'"
    if style != '"' and plain_is_safe(text, allow_bool_int=allow_bool_int):
        return text
    return json.dumps(text, ensure_ascii=False)


def render_key(text):
    return render_scalar(text, allow_bool_int=False)


# --------------------------------------------------------------------------- edits


class Edits:
    """Line-level changes to a Source, applied in one pass."""

    def __init__(self, source):
        self.source = source
        self._replace = {}
        self._delete = set()
        self._insert = {}

    def __bool__(self):
        return bool(self._replace or self._delete or self._insert)

    __nonzero__ = __bool__

    def replace(self, line, start_col, end_col, text):
        self._replace.setdefault(line, []).append((start_col, end_col, text))

    def delete(self, first, last):
        self._delete.update(range(first, last + 1))

    def insert_after(self, line, new_lines):
        self._insert.setdefault(line, []).extend(new_lines)

    def apply(self):
        source = self.source
        out = []
        count = len(source.lines)
        for index in range(count):
            ending = source.endings[index]
            inserted = self._insert.get(index, [])
            if index not in self._delete:
                text = source.lines[index]
                for start_col, end_col, new in sorted(self._replace.get(index, []), reverse=True):
                    text = text[:start_col] + new + text[end_col:]
                out.append(text)
                out.append(ending or (source.newline if inserted else ""))
            for position, new_line in enumerate(inserted):
                out.append(new_line)
                last_of_file = index == count - 1 and position == len(inserted) - 1
                out.append(ending if (last_of_file and not ending) else source.newline)
        return "".join(out)

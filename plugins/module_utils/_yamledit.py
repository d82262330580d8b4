# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Surgical edits of a YAML file: say what a mapping should hold, get line-level splices.

Private to the collection. ``Editor`` offers a few structural operations and works out every column, indent
and line itself, in the file's own indentation habits (``Layout``); ``Edits`` applies the splices in one pass,
so every line not edited keeps its exact bytes (comments, quoting, indentation, line endings). Error messages
name the file, line and column and never quote file content.
"""

from collections import OrderedDict

from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import (
    MappingNode,
    SequenceNode,
    Source,
    YamlEditError,
    block_lines,
    dash_column,
    entry,
    entry_line,
    first_child_column,
    is_block,
    is_empty,
    item_line,
    iter_nodes,
    last_line,
    render_scalar,
    span,
)

DELETE = object()  # as a child's new value in Editor.update: remove that child altogether


class Layout:
    """The file's own indentation habits, learnt from its block collections."""

    def __init__(self, source: Source, root):
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

    def child_step(self, *containers) -> int:
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


# --------------------------------------------------------------------------- line splices


class Edits:
    """Line-level changes to a Source, applied in one pass."""

    def __init__(self, source: Source):
        self.source = source
        self._replace = {}
        self._delete = set()
        self._insert = {}

    def __bool__(self) -> bool:
        return bool(self._replace or self._delete or self._insert)

    def replace(self, line: int, start_col: int, end_col: int, text: str) -> None:
        self._replace.setdefault(line, []).append((start_col, end_col, text))

    def delete(self, first: int, last: int) -> None:
        self._delete.update(range(first, last + 1))

    def insert_after(self, line: int, new_lines: list) -> None:
        self._insert.setdefault(line, []).extend(new_lines)

    def apply(self) -> str:
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


# --------------------------------------------------------------------------- structural operations


class Editor:
    """Structural edits of one composed file. Callers say what a mapping should hold; the editor works out where.

    A path is a list of (key, value) nodes from a child of the root down to the node concerned; values given
    are a mapping of scalar texts (dict), a list of scalar texts (list), or DELETE.
    """

    def __init__(self, source: Source, root):
        self.source = source
        self.root = root
        self.edits = Edits(source)
        self._layout = None

    def __bool__(self) -> bool:
        return bool(self.edits)

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = Layout(self.source, self.root)
        return self._layout

    def apply(self) -> str:
        return self.edits.apply()

    def update(self, names, children) -> None:
        """Make the mapping at key path ``names`` (from the root) hold ``children`` (name -> dict, list or DELETE).

        Missing parents are created; other children, and everything else in the file, are left as they are.
        """
        path, node = [], self.root
        for name in names:
            found = entry(node, name) if isinstance(node, MappingNode) else None
            if found is None:
                break
            path.append(found)
            node = found[1]
        for depth, (_key, value) in enumerate(path[:-1]):
            if not is_block(value):  # the text of a child inside a flow collection cannot be spliced by lines
                raise self._flow_error(path[: depth + 1])
        missing = list(names[len(path) :])
        if missing or not is_block(node):
            added = [(name, value) for name, value in children.items() if value is not DELETE]
            if added:
                self.add_children(path, missing, added)
            return
        new = []
        for name, value in children.items():
            found = entry(node, name)
            if value is DELETE:
                if found is not None:
                    self.delete(found)
            elif found is None:
                new.append((name, value))
            elif isinstance(value, dict):
                self.set_mapping(path + [found], value)
            else:
                self.set_list(path + [found], value)
        if new:
            self.add_children(path, [], new)

    def delete(self, found) -> None:
        """Remove the entry ``key: value`` (the pair ``found``) with all its lines."""
        self.edits.delete(*span(self.source, *found))

    def set_mapping(self, path, pairs) -> None:
        """Make the mapping under the last key of ``path`` hold exactly ``pairs`` (name -> scalar text), in place."""
        key, value = path[-1]
        col = self._sibling_column(path)
        if not is_block(value):
            self._rewrite_flow(key, value, pairs, col, self.layout.child_step(*[node for _key, node in reversed(path[:-1])]))
            return
        source, edits = self.source, self.edits
        child_col = first_child_column(source, value)
        current = OrderedDict((name_node.value, (name_node, value_node)) for name_node, value_node in value.value)
        kept = 0
        for name, (name_node, value_node) in current.items():
            if name not in pairs:
                if source.line(name_node.start_mark.line)[: name_node.start_mark.column].strip():
                    raise YamlEditError("%s: cannot remove %s, which shares its line with other content" % (source.where(name_node), name))
                edits.delete(*span(source, name_node, value_node))
                continue
            kept += 1
            if pairs[name] == value_node.value:
                continue
            if value_node.start_mark.line != value_node.end_mark.line or is_empty(value_node):
                first = name_node.start_mark.line
                edits.delete(*span(source, name_node, value_node))
                edits.insert_after(first, [entry_line(name_node.start_mark.column, name, pairs[name])])
                continue
            style = value_node.style if value_node.style in ("'", '"') else None
            edits.replace(value_node.start_mark.line, value_node.start_mark.column, value_node.end_mark.column, render_scalar(pairs[name], style))
        added = [(k, v) for k, v in pairs.items() if k not in current]
        if added:
            edits.insert_after(last_line(source, value, key), [entry_line(child_col, k, v) for k, v in added])
        elif not kept:
            self._write_after_colon(key, " {}")

    def set_list(self, path, items) -> None:
        """Make the list under the last key of ``path`` hold ``items``: others removed, new ones appended."""
        key, value = path[-1]
        if not is_block(value):
            self._rewrite_flow(key, value, items, self._sibling_column(path), self.layout.step)
            return
        source = self.source
        nodes = list(value.value)
        dash = dash_column(source, nodes[0])
        present = [node.value for node in nodes]
        kept = 0
        for node in nodes:
            if node.value in items:
                kept += 1
                continue
            start = node.start_mark.line
            if source.line(start)[:dash].strip():
                raise YamlEditError("%s: cannot remove an item of %s, which shares its line with other content" % (source.where(node), key.value))
            self.edits.delete(start, last_line(source, node))
        added = [item for item in items if item not in present]
        if added:
            self.edits.insert_after(last_line(source, value, key), [item_line(dash, item) for item in added])
        elif not kept:
            self._write_after_colon(key, " []")

    def add_children(self, path, missing, children) -> None:
        """Add ``children`` ((name, dict or list) pairs) at the end of the mapping at ``path`` (empty: the root), under
        the keys ``missing`` created on the way. A null or ``{}`` there becomes a block; a flow mapping too when every
        child it holds is rewritten, otherwise it is refused (its other children would be lost)."""
        source, layout = self.source, self.layout
        parent_key, parent = path[-1] if path else (None, self.root)
        step = layout.child_step(*[node for _key, node in reversed(path)])
        if is_block(parent):
            col = first_child_column(source, parent)
            anchor = last_line(source, parent, parent_key)
        elif parent_key is not None:
            if isinstance(parent, MappingNode) and parent.value:
                if missing or not {key.value for key, _value in parent.value} <= {name for name, _value in children}:
                    raise self._flow_error(path)
            self._clear_value(parent_key, parent)
            col = parent_key.start_mark.column + step
            anchor = parent_key.start_mark.line
        else:
            raise self._flow_error(path)
        lines = []
        for name in missing:
            lines.append("%s%s:" % (" " * col, name))
            col += step
        for name, value in children:
            lines.extend(block_lines(col, step, layout.seq_offset, name, value))
        self.edits.insert_after(anchor, lines)

    # -- helpers: where text goes

    def _flow_error(self, path) -> YamlEditError:
        node = path[-1][1] if path else self.root
        name = ".".join(key.value for key, _value in path) or "the document"
        return YamlEditError("%s: %s is written in flow style ({...}); rewrite it in block style and run again" % (self.source.where(node), name))

    def _sibling_column(self, path) -> int:
        parent = path[-2][1] if len(path) > 1 else self.root
        return first_child_column(self.source, parent)

    def _write_after_colon(self, key, text: str) -> None:
        column = self.source.line(key.start_mark.line).find(":", key.end_mark.column) + 1
        self.edits.replace(key.start_mark.line, column, column, text)

    def _clear_value(self, key, value) -> None:
        """Make ``key: <null or {} or []>`` a bare ``key:`` so that a block can follow."""
        if is_empty(value):
            return
        if value.start_mark.line != value.end_mark.line:
            raise YamlEditError("%s: %s spans several lines in flow style; rewrite it in block style and run again" % (self.source.where(value), key.value))
        line = self.source.line(key.start_mark.line)
        start = value.start_mark.column
        end = value.end_mark.column
        while start > 0 and line[start - 1] in " \t":
            start -= 1
        self.edits.replace(key.start_mark.line, start, end, "")

    def _rewrite_flow(self, key, value, new_value, col: int, step: int) -> None:
        """Replace a one-line flow collection (or a null) by the block form of ``new_value``."""
        self._clear_value(key, value)
        if not new_value:
            self._write_after_colon(key, " {}" if isinstance(new_value, dict) else " []")
            return
        self.edits.insert_after(key.start_mark.line, block_lines(col, step, self.layout.seq_offset, key.value, new_value)[1:])

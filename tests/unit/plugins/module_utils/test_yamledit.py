"""The YAML edit layer: Editor operations say what a mapping holds; the file keeps its own layout and bytes."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._yamledit import DELETE, Editor, Edits, Layout
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import (
    Source,
    YamlEditError,
    compose,
    entry,
    last_line,
    render_scalar,
    span,
)

from helpers import rke_view


def editor(text):
    source = Source(text, "c.yml")
    return Editor(source, compose(source))


def updated(text, names, children):
    edit = editor(text)
    edit.update(names, OrderedDict(children))
    return edit.apply()


# --------------------------------------------------------------------------- update


def test_missing_parents_are_created_in_the_files_own_indentation():
    text = "nodes:\n-   address: a\nnetwork:\n    plugin: canal\n"
    after = updated(text, ("services", "kubeproxy"), [("extra_args", {"v": "2"}), ("extra_binds", ["/a:/a"])])
    assert after == text + "services:\n    kubeproxy:\n        extra_args:\n            v: 2\n        extra_binds:\n        - /a:/a\n"


def test_a_child_is_added_at_the_end_of_its_mapping_after_trailing_content():
    text = "services:\n  etcd:\n    snapshot: true\n  kubelet:\n    image: x  # pinned\n\n# next\nnetwork: {}\n"
    after = updated(text, ("services", "kubeproxy"), [("extra_args", {"proxy-mode": "ipvs"})])
    assert after == (
        "services:\n  etcd:\n    snapshot: true\n  kubelet:\n    image: x  # pinned\n  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs\n"
        "\n# next\nnetwork: {}\n"
    )


@pytest.mark.parametrize("value", ["", " ~", " {}", " null  # none yet"])
def test_an_empty_parent_becomes_a_block(value):
    after = updated("services:" + value + "\nnodes: []\n", ("services", "kubeproxy"), [("extra_args", {})])
    assert after.startswith("services:" + ("  # none yet" if "#" in value else "") + "\n  kubeproxy:\n    extra_args: {}\nnodes: []\n")


def test_existing_children_are_edited_in_place_and_others_left_alone():
    text = (
        "services:\n  kubeproxy:\n    image: x\n    extra_args:\n      # tuned\n      v: 2\n      old: 'yes'\n"
        "    extra_binds:\n      - /a:/a\n      - /b:/b\n    win_extra_args:\n      v: 2\n"
    )
    children = [("extra_args", {"v": "4", "new": "1.10"}), ("extra_binds", ["/b:/b", "/c:/c"]), ("win_extra_args", DELETE), ("extra_env", ["A=b"])]
    after = updated(text, ("services", "kubeproxy"), children)
    assert after == (
        'services:\n  kubeproxy:\n    image: x\n    extra_args:\n      # tuned\n      v: 4\n      new: "1.10"\n'
        "    extra_binds:\n      - /b:/b\n      - /c:/c\n    extra_env:\n      - A=b\n"
    )
    assert rke_view(after)["services"]["kubeproxy"]["extra_args"] == {"v": "4", "new": "1.10"}


def test_nothing_to_do_is_no_edit():
    edit = editor("services:\n  kubeproxy:\n    extra_args: {v: '2'}\n")
    edit.update(("services", "kubeproxy"), OrderedDict([("win_extra_args", DELETE)]))
    assert not edit
    assert edit.apply() == "services:\n  kubeproxy:\n    extra_args: {v: '2'}\n"


# --------------------------------------------------------------------------- set_mapping, set_list


def mapping_path(edit, *names):
    path, node = [], edit.root
    for name in names:
        found = entry(node, name)
        path.append(found)
        node = found[1]
    return path


def test_set_mapping_keeps_quotes_and_comments_and_empties_to_braces():
    text = "a:\n  m:\n    x: 'one'  # keep\n    y: \"two\"\n    z: three\nb: 1\n"
    edit = editor(text)
    edit.set_mapping(mapping_path(edit, "a", "m"), {"x": "uno", "y": "dos"})
    assert edit.apply() == "a:\n  m:\n    x: 'uno'  # keep\n    y: \"dos\"\nb: 1\n"
    edit = editor(text)
    edit.set_mapping(mapping_path(edit, "a", "m"), {})
    assert edit.apply() == "a:\n  m: {}\nb: 1\n"


def test_set_mapping_rewrites_a_flow_mapping_as_a_block():
    edit = editor("a:\n    m: {x: 1}  # why\nb: 1\n")
    edit.set_mapping(mapping_path(edit, "a", "m"), {"x": "1", "y": "true"})
    assert edit.apply() == "a:\n    m:  # why\n        x: 1\n        y: true\nb: 1\n"


def test_set_mapping_replaces_multi_line_values_whole():
    edit = editor("m:\n  x: >-\n    long\n    text\n  y: 1\n")
    edit.set_mapping(mapping_path(edit, "m"), {"x": "short", "y": "1"})
    assert edit.apply() == "m:\n  x: short\n  y: 1\n"


def test_set_list_keeps_the_dash_column_and_empties_to_brackets():
    text = "l:\n- a\n- b  # bee\nz: 1\n"
    edit = editor(text)
    edit.set_list(mapping_path(edit, "l"), ["b", "c"])
    assert edit.apply() == "l:\n- b  # bee\n- c\nz: 1\n"
    edit = editor(text)
    edit.set_list(mapping_path(edit, "l"), [])
    assert edit.apply() == "l: []\nz: 1\n"


def test_set_list_removes_items_of_a_flush_list():
    edit = editor("k:\n  l:\n  - a\n  - b\n")
    edit.set_list(mapping_path(edit, "k", "l"), ["b"])
    assert edit.apply() == "k:\n  l:\n  - b\n"


def test_a_flow_collection_over_several_lines_is_refused():
    edit = editor("k: {a: 1,\n  b: 2}\n")
    with pytest.raises(YamlEditError, match=r"c.yml: line 1, column 4: k spans several lines in flow style"):
        edit.set_mapping(mapping_path(edit, "k"), {"a": "1"})


def test_delete_removes_every_line_of_the_entry():
    edit = editor("a: 1\nb:\n  c: |\n    text\n\n    more\n  d: 2\ne: 3\n")
    edit.delete(mapping_path(edit, "b")[0])
    assert edit.apply() == "a: 1\ne: 3\n"


# --------------------------------------------------------------------------- text mechanics


def test_edits_keep_line_endings_and_a_missing_final_newline():
    source = Source("a: 1\r\nb: 2", "c.yml")
    edits = Edits(source)
    edits.replace(0, 3, 4, "10")
    edits.insert_after(1, ["c: 3"])
    assert edits.apply() == "a: 10\r\nb: 2\r\nc: 3"


def test_layout_learns_the_files_indent_and_list_offset():
    text = "nodes:\n- address: a\n  labels:\n      zone: z\nservices:\n    etcd:\n        snapshot: true\n"
    source = Source(text, "c.yml")
    layout = Layout(source, compose(source))
    assert (layout.step, layout.seq_offset) == (4, 0)


def test_span_and_last_line_skip_trailing_blank_lines():
    source = Source("a:\n  b: 1\n\n\nc: 2\n", "c.yml")
    root = compose(source)
    key, value = root.value[0]
    assert span(source, key, value) == (0, 1)
    assert last_line(source, root) == 4


@pytest.mark.parametrize(
    ("text", "written"),
    [("ipvs", "ipvs"), ("1.10", '"1.10"'), ("yes", '"yes"'), ("true", "true"), ("a: b", '"a: b"'), ("", '""'), ("007", '"007"')],
)
def test_scalars_are_written_to_read_back_as_the_same_text(text, written):
    assert render_scalar(text) == written

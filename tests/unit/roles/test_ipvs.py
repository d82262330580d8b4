"""The role rkeops.ipvs.ipvs: every variable declared once, with its default, and documented for each step that reads it;
each step's result declared as a result; the entry points listed alike, in the order they run."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "ipvs"
PREREQS = ROLE.parent / "prereqs"
PLAYBOOKS = ROLE.parents[1] / "playbooks"
# The entry points, in the order they run.
STEPS = ["preflight", "prepare", "switch", "repair", "leftovers", "verify", "cleanup"]
# The fact each step hands on to the steps after it: a result, not a setting.
RESULTS = {
    "preflight": "ipvs_preflight_result",
    "prepare": "ipvs_prepare_result",
    "switch": "ipvs_switch_result",
    "repair": "ipvs_repair_result",
    "verify": "ipvs_verify_result",
}


def load(path: Path):
    return yaml.safe_load(path.read_text())


def test_defaults_and_argument_specs_declare_the_same_variables_with_the_same_defaults():
    defaults = load(ROLE / "defaults" / "main.yml")
    options = {}
    for step, spec in load(ROLE / "meta" / "argument_specs.yml")["argument_specs"].items():
        for name, option in spec["options"].items():
            # Written once (a YAML anchor), so every step documents an option the same way.
            assert options.setdefault(name, option) == option, (step, name)
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert options[name]["default"] == value, name


def test_every_variable_a_step_reads_is_declared_for_that_step():
    specs = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]
    defaults = set(load(ROLE / "defaults" / "main.yml"))
    internal = load(ROLE / "vars" / "main.yml")
    # Which internal variables read which user variables.
    internal_reads = {name: set(re.findall(r"\bipvs_[a-z_]+", str(value))) for name, value in internal.items()}
    steps = {
        "preflight": ["preflight.yml", "read_kube_proxy.yml", "admin_preflight.yml", "plan.yml", "admin_preflight_rke_up.yml"],
        "prepare": ["prepare.yml"],
        "switch": ["switch.yml", "rke_up.yml", "plan.yml", "admin_preflight_rke_up.yml"],
        "repair": ["repair.yml", "read_kube_proxy.yml"],
        "leftovers": ["leftovers.yml", "read_kube_proxy.yml"],
        "verify": ["verify.yml", "read_kube_proxy.yml"],
        "cleanup": ["cleanup.yml"],
    }
    assert set(specs) == set(steps)
    for step, files in steps.items():
        text = "".join((ROLE / "tasks" / name).read_text() for name in files)
        if step == "verify":
            text += (ROLE / "templates" / "verify_table.j2").read_text()
        # Not attributes (prereqs_result.ipvs_ready), YAML anchors (&ipvs_patch) or internal names (_ipvs_...).
        used = set(re.findall(r"(?<![\w.&*])ipvs_[a-z_]+", text)) - set(RESULTS.values())
        for name in re.findall(r"\b_ipvs_[a-z_]+", text):
            used |= internal_reads.get(name, set())
        assert used <= defaults, (step, sorted(used - defaults))
        assert used <= set(specs[step]["options"]), (step, sorted(used - set(specs[step]["options"])))


def test_playbooks_are_host_selection_and_include_role():
    for playbook in ("enable", "verify", "disable"):
        for play in load(PLAYBOOKS / f"{playbook}.yml"):
            assert set(play) <= {"name", "hosts", "become", "gather_facts", "serial", "max_fail_percentage", "tasks"}, (playbook, play["name"])
            if "serial" in play:
                # Batches of the size the role documents, and a batch that fails stops the run.
                assert play["serial"] == "{{ ipvs_repair_batch | default(1) }}" and play["max_fail_percentage"] == 0, playbook
            for task in play["tasks"]:
                assert task["ansible.builtin.include_role"]["name"] == "rkeops.ipvs.ipvs", (playbook, task["name"])


def tasks_of(tasks):
    """Every task of a task list, those inside blocks included."""
    for task in tasks or []:
        yield task
        for part in ("block", "rescue", "always"):
            yield from tasks_of(task.get(part))


def facts_set(role: Path):
    """{file: names} of what the role's task files set as facts or register."""
    found = {}
    for path in sorted((role / "tasks").glob("*.yml")):
        for task in tasks_of(load(path)):
            names = set(task.get("ansible.builtin.set_fact") or {}) | ({task["register"]} if "register" in task else set())
            found.setdefault(path.name, set()).update(names)
    return found


def test_what_a_step_hands_on_is_its_documented_result_and_everything_else_is_internal():
    specs = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]
    for role, results in ((ROLE, set(RESULTS.values())), (PREREQS, {"prereqs_result"})):
        prefix = role.name
        names = set().union(*facts_set(role).values())
        # Internal names (_ipvs_..., __prereqs_...) stay within the role; a name other plays read is a *_result.
        assert {name for name in names if not re.match(r"_{1,2}%s_" % prefix, name)} == results, role.name
    for step, result in RESULTS.items():
        assert "Result: the fact C(%s)" % result in " ".join(specs[step]["description"]), step
    prereqs = load(PREREQS / "meta" / "argument_specs.yml")["argument_specs"]["main"]
    assert "C(prereqs_result)" in " ".join(prereqs["description"])
    assert "`prereqs_result`" in (PREREQS / "README.md").read_text()


def test_the_entry_points_are_listed_alike_in_the_order_they_run():
    listed = ", ".join(STEPS)
    assert list(load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]) == STEPS
    for path in [ROLE / "defaults" / "main.yml", ROLE / "meta" / "argument_specs.yml"] + sorted(PLAYBOOKS.glob("*.yml")):
        comments = " ".join(line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#"))
        assert listed in comments, path.name
    for path in sorted(PLAYBOOKS.glob("*.yml")):
        # Each playbook runs its steps in that order.
        included = [task["ansible.builtin.include_role"]["tasks_from"] for play in load(path) for task in play["tasks"]]
        assert included == sorted(included, key=STEPS.index), path.name

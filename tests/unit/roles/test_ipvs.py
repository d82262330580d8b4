"""The role rkeops.ipvs.ipvs: every variable declared once, with its default, and documented for each step that reads it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "ipvs"
PLAYBOOKS = ROLE.parents[1] / "playbooks"
# Facts the role sets or registers for other plays to read: results, not settings.
RESULTS = {"ipvs_verify", "ipvs_node_error", "ipvs_kube_proxy", "ipvs_switch", "ipvs_repair"}


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
        "prepare": ["prepare.yml"],
        "switch": ["switch.yml", "admin_preflight.yml", "rke_up.yml", "admin_preflight_rke_up.yml"],
        "repair": ["repair.yml"],
        "leftovers": ["leftovers.yml"],
        "verify": ["verify.yml"],
        "cleanup": ["cleanup.yml"],
    }
    assert set(specs) == set(steps)
    for step, files in steps.items():
        text = "".join((ROLE / "tasks" / name).read_text() for name in files)
        if step == "verify":
            text += (ROLE / "templates" / "verify_table.j2").read_text()
        # Not attributes (prereqs_report.ipvs_ready), YAML anchors (&ipvs_patch) or internal names (_ipvs_...).
        used = set(re.findall(r"(?<![\w.&*])ipvs_[a-z_]+", text)) - RESULTS
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

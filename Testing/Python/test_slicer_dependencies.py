"""The first-use check: what is missing in Slicer's Python and the plan that installs it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "LiverFusionSeg"))

from LiverFusionSegLib import dependencies  # noqa: E402


def test_nothing_is_missing_where_the_tests_run():
    assert dependencies.missing() == []


def test_missing_torch_goes_through_the_pytorch_extension_first():
    absent = {"torch", "monai"}
    names = dependencies.missing(lambda name: None if name in absent else object())
    assert names == ["torch", "monai"]
    plan = dependencies.install_plan(names)
    assert [(s.name, s.via) for s in plan] == [("torch", "pytorch-extension"), ("monai", "pip")]
    assert plan[1].requirement == "monai==1.6.1"
    assert "PyTorch extension" in dependencies.describe(plan) and "monai==1.6.1" in dependencies.describe(plan)


def test_pinned_versions_match_the_constraints_the_tests_ran_with():
    constraints = (Path(__file__).resolve().parents[2] / "constraints.txt").read_text(encoding="utf-8").lower().split()
    pins = dict(line.split("==") for line in constraints if "==" in line)
    for requirement in dependencies.PIP_PACKAGES.values():
        if "==" in requirement:
            name, version = requirement.lower().split("==")
            assert pins[name] == version, requirement

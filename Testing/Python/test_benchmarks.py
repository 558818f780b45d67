"""The benchmarks are not tests, but they share one helper module and each writes its figures as JSON."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name != "benchlib.py")


def called(tree: ast.Module) -> set[str]:
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_each_benchmark_writes_json_through_the_shared_helpers(script):
    tree = ast.parse(script.read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "benchlib" in imported and "bench_models" not in imported
    assert {"json_argument", "write_json"} <= called(tree)


def test_a_benchmark_starts_and_says_where_its_json_goes():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_models.py"), "--help"], capture_output=True,
                          text=True, cwd=BENCHMARKS.parent.parent)
    assert done.returncode == 0, done.stderr
    assert "bench_models.json" in done.stdout

"""build_info(): how the core was built, and the warning for threads a build cannot use."""
from __future__ import annotations

import ast
import importlib.metadata
import pathlib
import warnings

import numpy as np
import pytest

import treelens
from helpers import assert_bitwise


def test_build_info_describes_the_build():
    info = treelens.build_info()
    assert isinstance(info["openmp"], bool)
    if info["openmp"]:
        assert isinstance(info["openmp_version"], int) and info["openmp_version"] >= 200203
    else:
        assert info["openmp_version"] is None
    assert info["simd"] in ("vector extensions", "scalar fallback")
    targets = info["simd_targets"]
    assert isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets)
    assert info["simd_selected"] in targets
    assert isinstance(info["compiler"], str)
    name = info["compiler"].split(" ")[0]
    assert name in ("GCC", "clang", "Apple", "MSVC"), info["compiler"]
    assert any(ch.isdigit() for ch in info["compiler"])
    assert info["version"] == treelens.__version__ == importlib.metadata.version("treelens")


def test_build_info_is_a_fresh_copy():
    info = treelens.build_info()
    info["simd_targets"].append("changed")
    info["openmp"] = "changed"
    again = treelens.build_info()
    assert "changed" not in again["simd_targets"] and again["openmp"] != "changed"


@pytest.mark.parametrize("entry", ["predict", "shap_values"])
def test_threads_warn_only_without_openmp(entry, cases):
    case = cases["xgb_reg"]
    explainer = treelens.TreeExplainer(case.model, n_threads=1)
    one = getattr(explainer, entry)(case.X)
    forest = treelens.load(case.model)
    if treelens.build_info()["openmp"]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            two = getattr(forest, entry)(case.X, n_threads=2)
    else:
        with pytest.warns(RuntimeWarning, match=r"n_threads=2 .* no OpenMP"):
            two = getattr(forest, entry)(case.X, n_threads=2)
    assert_bitwise(two, one, f"{entry} with two threads")


def test_one_thread_never_warns(cases):
    case = cases["lgb_reg"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        treelens.TreeExplainer(case.model, n_threads=1).shap_values(case.X)


def _stub_names(nodes) -> set:
    return {n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_core_stub_matches_the_extension():
    """py.typed ships with _core.pyi: it must name exactly what the extension defines."""
    from treelens import _core

    package = pathlib.Path(treelens.__file__).parent
    assert (package / "py.typed").is_file()
    tree = ast.parse((package / "_core.pyi").read_text())
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert _stub_names(tree.body) == public
    forest = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Forest")
    methods = _stub_names(forest.body) - {"__init__"}
    assert methods == {name for name in dir(_core.Forest) if not name.startswith("_")}

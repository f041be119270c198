"""Small model files that declare huge sizes, nest deeply or are not text: each is refused
with a message naming the problem, before anything is allocated for the declared size.

The files are loaded in a child interpreter whose address space is capped, so a loader
that trusted a declared size would die there (or raise an empty MemoryError) instead of
taking the test process down.
"""
from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from treelens.loaders import _lightgbm_categories as pandas_categories
from treelens.loaders import lightgbm as lgb_loader

_MEMORY_CAP = 3 << 30
_LOAD_CAPPED = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
import treelens
for path in sys.argv[2:]:
    try:
        treelens.load(path)
        outcome = None
    except Exception as e:
        outcome = [type(e).__name__, isinstance(e, ValueError), str(e)]
    print(json.dumps({"path": path, "outcome": outcome}), flush=True)
"""


def _xgb_doc(case):
    return json.loads(bytes(case.model.get_booster().save_raw("json")))


def _hostile_files(cases):
    """name -> (bytes, regex the error message must match)."""
    xgb = _xgb_doc(cases["xgb_reg"])
    ltext = cases["lgb_reg"].model.booster_.model_to_string()
    ldump = cases["lgb_reg"].model.booster_.dump_model()

    def xgb_edit(edit):
        doc = json.loads(json.dumps(xgb))
        edit(doc["learner"])
        return json.dumps(doc).encode()

    def param(key, value):
        return xgb_edit(lambda learner: learner["learner_model_param"].__setitem__(key, value))

    def gbtree(edit):
        return xgb_edit(lambda learner: edit(learner["gradient_booster"]["model"]))

    def header(key, value):
        return re.sub(rf"^{key}=.*$", f"{key}={value}", ltext, count=1,
                      flags=re.M).encode()

    def footer(value):
        return re.sub(r"^pandas_categorical:.*$", "pandas_categorical:" + value, ltext,
                      flags=re.M).encode()

    def dump_edit(edit):
        doc = json.loads(json.dumps(ldump))
        edit(doc)
        return json.dumps(doc).encode()

    return {
        "xgb_num_class.json": (param("num_class", "100000000"), "100000000 outputs"),
        "xgb_num_target.json": (param("num_target", "100000000"), "100000000 outputs"),
        "xgb_num_feature_2_31.json": (param("num_feature", str(2**31)), "num_feature"),
        "xgb_num_trees.json": (gbtree(lambda m: m["gbtree_model_param"].__setitem__(
            "num_trees", "1000000000")), "num_trees"),
        "xgb_num_nodes.json": (gbtree(lambda m: m["trees"][0]["tree_param"].__setitem__(
            "num_nodes", str(10**12))), "expected 1000000000000"),
        "lgb_max_feature_idx.txt": (header("max_feature_idx", 2_000_000_000),
                                    "max_feature_idx"),
        "lgb_num_tree_per_iteration.txt": (header("num_tree_per_iteration", 10**9),
                                           "num_tree_per_iteration"),
        "lgb_num_class.txt": (header("num_class", 10**8), "num_class"),
        "lgb_num_leaves.txt": (re.sub(r"^num_leaves=.*$", "num_leaves=10000000000", ltext,
                                      count=1, flags=re.M).encode(), "expected 9999999999"),
        "lgb_nested_categories.txt": (footer("[" * 100_000 + "]" * 100_000), "nested"),
        "lgb_bad_categories.txt": (footer('[["a", ["b"]]]'), r"pandas_categorical\[0\]"),
        "lgb_not_utf8.txt": (ltext.encode()[:200] + b"\xff\xfe" + ltext.encode()[200:],
                             "lgb_not_utf8.txt.*UTF-8"),
        "lgb_dump_num_leaves.json": (dump_edit(lambda d: d["tree_info"][0].__setitem__(
            "num_leaves", 10**10)), "num_leaves=10000000000"),
        "lgb_dump_max_feature_idx.json": (dump_edit(lambda d: d.__setitem__(
            "max_feature_idx", 2 * 10**9)), "max_feature_idx"),
    }


@pytest.fixture(scope="module")
def outcomes(cases, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    files = _hostile_files(cases)
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_CAPPED, str(_MEMORY_CAP),
         *(str(folder / name) for name in files)],
        capture_output=True, text=True, timeout=300)
    results = {}
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        results[record["path"].rsplit("/", 1)[-1]] = record["outcome"]
    return files, results, proc


HOSTILE_NAMES = [
    "xgb_num_class.json", "xgb_num_target.json", "xgb_num_feature_2_31.json",
    "xgb_num_trees.json", "xgb_num_nodes.json", "lgb_max_feature_idx.txt",
    "lgb_num_tree_per_iteration.txt", "lgb_num_class.txt", "lgb_num_leaves.txt",
    "lgb_nested_categories.txt", "lgb_bad_categories.txt", "lgb_not_utf8.txt",
    "lgb_dump_num_leaves.json", "lgb_dump_max_feature_idx.json",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_file_is_refused_by_name(name, outcomes):
    files, results, proc = outcomes
    assert sorted(files) == sorted(HOSTILE_NAMES)
    assert name in results, (f"the capped child died before loading {name} (exit "
                             f"{proc.returncode}):\n{proc.stderr[-2000:]}")
    outcome = results[name]
    assert outcome is not None, f"{name} was accepted"
    exc_type, is_value_error, message = outcome
    assert is_value_error, f"{name}: {exc_type}: {message}"
    assert re.search(files[name][1], message), f"{name}: {message}"


def test_directory_is_reported_as_a_directory(tmp_path):
    import treelens

    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        treelens.load(tmp_path)


def test_many_category_lists_and_features_load_without_a_hang(cases, tmp_path):
    """3000 pandas category lists over 100k features: linear work, loaded in a child that
    must finish well inside its timeout (the former lists x features loop took minutes)."""
    text = cases["lgb_reg"].model.booster_.model_to_string()
    n_features = 100_000
    text = re.sub(r"^max_feature_idx=.*$", f"max_feature_idx={n_features - 1}", text,
                  count=1, flags=re.M)
    text = re.sub(r"^feature_names=.*$", "feature_names=" + " ".join(
        f"c{i}" for i in range(n_features)), text, count=1, flags=re.M)
    text = re.sub(r"^feature_infos=.*$", "feature_infos=" + " ".join(
        ["none"] * n_features), text, count=1, flags=re.M)
    lists = json.dumps([["a", "b", "c"]] * 3000)
    text = re.sub(r"^pandas_categorical:.*$", "pandas_categorical:" + lists, text, flags=re.M)
    path = tmp_path / "many.txt"
    path.write_text(text)
    code = "import sys, treelens; print(treelens.load(sys.argv[1]).n_features)"
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == str(n_features)


def _placements(fits, n_lists, n_features):
    """Every order-preserving placement of the lists on features (brute force)."""
    return [combo for combo in itertools.combinations(range(n_features), n_lists)
            if all(fits(f, j) for j, f in enumerate(combo))]


@pytest.mark.parametrize("seed", range(40))
def test_category_lists_placed_as_brute_force_says(seed):
    """The linear placement of pandas category lists equals the brute-force answer: the
    unique fitting placement, or nothing when there are none or several."""
    rng = np.random.default_rng(seed)
    n_features, n_lists = int(rng.integers(1, 8)), int(rng.integers(1, 4))
    infos = []
    for _ in range(n_features):
        kind = rng.integers(3)
        high = int(rng.integers(0, 6))
        infos.append(None if kind == 0 else lgb_loader._FeatureInfo(
            bool(kind == 1), float(rng.integers(-1, 1)), float(high)))
    lists = [[f"v{i}" for i in range(int(rng.integers(1, 6)))] for _ in range(n_lists)]
    feature_types = ["q"] * n_features

    def fits(f, j):
        info = infos[f]
        if info is None:
            return True
        return ((-1 if info.categorical else 0) <= info.low
                and info.high <= len(lists[j]) - 1)

    found = _placements(fits, n_lists, n_features)
    expected = {f: lists[j] for j, f in enumerate(found[0])} if len(found) == 1 else {}
    assert pandas_categories.by_feature(lists, infos, feature_types) == expected

"""Thousands of deterministic mutations of small real model files: every one either loads
and predicts like the library (where the library loads it too) with finite, additive SHAP
values, or raises an exception with a message; nothing crashes, hangs or allocates without
bound.

Sources: an XGBoost model with a categorical feature as JSON and UBJSON, a LightGBM model
with a categorical feature as text and as ``dump_model()`` JSON. Mutations: truncations,
byte flips, numbers swapped for hostile ones (0, -1, huge, subnormal, NaN, inf, 2^31,
2^63, ...), child indices out of range or pointing back up the tree, and huge declared
sizes. treelens loads them in a child interpreter with a capped address space and a
timeout; the libraries load an evenly spaced sample of the accepted ones, each in a
forked child (on hostile files LightGBM itself aborts or loops, and XGBoost may too).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

N_RANDOM = 250           # truncations, byte flips and number swaps per source and kind
MEMORY_CAP = 3 << 30     # bytes of address space for the treelens child
LIBRARY_SAMPLE = 150     # accepted mutations also loaded by the library (every k-th one)
HOSTILE_NUMBERS = ["0", "-1", "1", "2147483647", "2147483648", "-2147483649",
                   "9223372036854775807", "18446744073709551616", "1000000000", "1e308",
                   "-1e308", "1e-320", "4.9e-324", "3.5e38", "NaN", "Infinity", "-0",
                   "0.5", "16777216", "4294967296"]

_TREELENS_CHILD = r"""
import json, resource, sys
import numpy as np
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import treelens
X = np.load(sys.argv[2])
for path in sys.argv[3:]:
    record = {"path": path}
    try:
        forest = treelens.load(path)
        margin = forest.predict(X, n_threads=1).reshape(len(X), -1)
        phi = forest.shap_values(X, n_threads=1).reshape(len(X), X.shape[1], -1)
        total = phi.sum(axis=1) + np.reshape(forest.expected_value, (1, -1))
        finite = bool(np.isfinite(phi).all() and np.isfinite(forest.expected_value).all())
        scale = 1.0 + np.abs(phi).sum(axis=1) + np.abs(margin)
        record["margin"] = margin.tolist()
        record["finite"] = finite
        record["additive"] = bool(np.all(np.abs(total - margin) <= 1e-6 * scale))
    except Exception as e:
        record["error"] = [type(e).__name__, str(e)]
    print(json.dumps(record), flush=True)
"""

_LIBRARY_CHILD = r"""
import json, os, signal, sys, warnings
import numpy as np
import lightgbm as lgb
import xgboost as xgb
warnings.simplefilter("ignore")
X = np.load(sys.argv[1])


def margin_of(path):
    if path.endswith((".json", ".ubj")) and "/lgb_" not in path:
        booster = xgb.Booster(model_file=path)
        booster.set_param({"nthread": 1})
        dm = xgb.DMatrix(X, feature_types=["q", "c", "q", "q"], enable_categorical=True,
                         nthread=1)
        return booster.predict(dm, output_margin=True)
    return lgb.Booster(model_file=path).predict(X, raw_score=True, num_threads=1)


for path in sys.argv[2:]:
    # One forked child per file: a library that aborts on a hostile file takes only it down.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        signal.alarm(5)
        try:
            margin = np.asarray(margin_of(path), dtype=np.float64).reshape(len(X), -1)
            payload = {"margin": margin.tolist()}
        except Exception as e:
            payload = {"error": str(e)[:200]}
        os.write(write_end, json.dumps(payload).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    record = json.loads(data) if data else {"died": True}
    record["path"] = path
    print(json.dumps(record), flush=True)
"""


# ---------------------------------------------------------------- source models

def _sources(tmp: Path) -> Dict[str, bytes]:
    import lightgbm as lgb
    import pandas as pd
    import xgboost as xgb

    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 4))
    X[:, 1] = rng.integers(0, 6, size=400)
    y = X[:, 0] + np.where(X[:, 1] % 2 == 0, 1.0, -1.0) + 0.1 * X[:, 2]
    X[rng.random(X.shape) < 0.05] = np.nan
    dm = xgb.DMatrix(X, y, feature_types=["q", "c", "q", "q"], enable_categorical=True)
    booster = xgb.train(dict(max_depth=3, nthread=1, max_cat_to_onehot=1), dm, 4)
    lgb_booster = lgb.train(
        dict(num_leaves=6, min_data_in_leaf=5, min_data_per_group=5, cat_smooth=1.0,
             max_cat_to_onehot=2, verbose=-1, num_threads=1),
        lgb.Dataset(pd.DataFrame(X), y, categorical_feature=[1]), 4)
    return {
        "xgb.json": bytes(booster.save_raw("json")),
        "xgb.ubj": bytes(booster.save_raw("ubj")),
        "lgb.txt": lgb_booster.model_to_string().encode(),
        "lgb_dump.json": json.dumps(lgb_booster.dump_model()).encode(),
    }


def _probe_rows() -> np.ndarray:
    rng = np.random.default_rng(12)
    X = rng.normal(size=(16, 4))
    X[:, 1] = rng.integers(-1, 8, size=16)
    X[::5, :] = np.nan
    return X


# ---------------------------------------------------------------- mutations

def _truncations(data: bytes, rng: np.random.Generator) -> List[bytes]:
    return [data[:int(k)] for k in rng.integers(0, len(data), size=N_RANDOM)]


def _byte_flips(data: bytes, rng: np.random.Generator) -> List[bytes]:
    out = []
    for _ in range(N_RANDOM):
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), size=int(rng.integers(1, 4))):
            buf[pos] ^= int(rng.integers(1, 256))
        out.append(bytes(buf))
    return out


_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _number_swaps(data: bytes, rng: np.random.Generator) -> List[bytes]:
    """A number of the text replaced by a hostile one."""
    spans = [m.span() for m in _NUMBER.finditer(data)]
    out = []
    for _ in range(N_RANDOM):
        a, b = spans[int(rng.integers(len(spans)))]
        value = HOSTILE_NUMBERS[int(rng.integers(len(HOSTILE_NUMBERS)))].encode()
        out.append(data[:a] + value + data[b:])
    return out


def _typed_array_swaps(data: bytes, rng: np.random.Generator) -> List[bytes]:
    """UBJSON: 4 or 8 bytes inside typed array payloads overwritten with hostile values."""
    heads = [m.end() for m in re.finditer(rb"\[\$[dlLiU]#L.{8}", data, re.S)]
    hostile = [np.float32(v).tobytes()[::-1] for v in (np.nan, np.inf, -np.inf, 3e38, 1e-45)]
    hostile += [np.int32(v).tobytes()[::-1] for v in (-7, 2**31 - 1, -(2**31), 10**9, 0)]
    out = []
    for _ in range(N_RANDOM):
        pos = heads[int(rng.integers(len(heads)))] + 4 * int(rng.integers(0, 8))
        value = hostile[int(rng.integers(len(hostile)))]
        out.append(data[:pos] + value + data[pos + len(value):])
    return out


def _xgb_structural(data: bytes) -> List[bytes]:
    doc = json.loads(data)
    out = []

    def edited(edit: Callable[[Dict[str, Any]], None]) -> bytes:
        copy = json.loads(data)
        edit(copy["learner"])
        return json.dumps(copy).encode()

    tree0 = doc["learner"]["gradient_booster"]["model"]["trees"][0]
    n = len(tree0["left_children"])
    inner = [i for i in range(n) if tree0["left_children"][i] != -1]
    for node in inner:
        for side in ("left_children", "right_children"):
            for target in (n, n + 10**6, -2, 0, node, 2**31 - 1):
                def edit(learner, side=side, node=node, target=target):
                    learner["gradient_booster"]["model"]["trees"][0][side][node] = target
                out.append(edited(edit))
    for key in ("num_class", "num_feature", "num_target"):
        for value in ("1000000000", "2147483648", "-1", "0"):
            out.append(edited(lambda lr, k=key, v=value:
                              lr["learner_model_param"].__setitem__(k, v)))
    for value in ("1000000000", "0", "-5"):
        out.append(edited(lambda lr, v=value: lr["gradient_booster"]["model"]["trees"][0]
                          ["tree_param"].__setitem__("num_nodes", v)))
        out.append(edited(lambda lr, v=value: lr["gradient_booster"]["model"]
                          ["gbtree_model_param"].__setitem__("num_trees", v)))
    return out


def _lgb_structural(data: bytes) -> List[bytes]:
    text = data.decode()
    out = []
    block = re.search(r"^left_child=(.*)$", text, re.M)
    children = block.group(1).split()
    for i in range(len(children)):
        for target in (len(children), 10**6, -(len(children) + 5), 0, i, -2**31):
            swapped = list(children)
            swapped[i] = str(target)
            out.append((text[:block.start(1)] + " ".join(swapped)
                        + text[block.end(1):]).encode())
    for key in ("max_feature_idx", "num_class", "num_tree_per_iteration", "num_leaves",
                "num_cat"):
        for value in ("1000000000", "2147483647", "-1", "0"):
            out.append(re.sub(rf"^{key}=.*$", f"{key}={value}", text, count=1,
                              flags=re.M).encode())
    return out


def _mutations(sources: Dict[str, bytes]) -> List[Tuple[str, bytes]]:
    out = []
    for index, (name, data) in enumerate(sorted(sources.items())):
        rng = np.random.default_rng(1000 + index)
        kinds = {"trunc": _truncations(data, rng), "flip": _byte_flips(data, rng)}
        if name.endswith(".ubj"):
            kinds["swap"] = _typed_array_swaps(data, rng)
        else:
            kinds["swap"] = _number_swaps(data, rng)
        if name == "xgb.json":
            kinds["struct"] = _xgb_structural(data)
        if name == "lgb.txt":
            kinds["struct"] = _lgb_structural(data)
        stem, ext = name.rsplit(".", 1)
        for kind, items in kinds.items():
            out += [(f"{stem}_{kind}_{i}.{ext}", item) for i, item in enumerate(items)]
    return out


# ---------------------------------------------------------------- running

def _run_lines(args: List[str], timeout: float,
               env: Optional[Dict[str, str]] = None) -> Tuple[List[dict], Any]:
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace",
                          timeout=timeout, env=env)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")], proc


def _library_margins(originals: List[str], accepted: List[str], probe: str) -> Dict[str, Any]:
    """path -> library margin (list), or None where the library refuses or dies on it, for
    the originals and an evenly spaced sample of the accepted mutations (the library does
    not read its own ``dump_model()`` JSON)."""
    accepted = [p for p in accepted if "/lgb_dump_" not in p]
    step = max(1, -(-len(accepted) // LIBRARY_SAMPLE))
    paths = [p for p in originals if not p.endswith("dump.json")] + accepted[::step]
    lines, proc = _run_lines([sys.executable, "-c", _LIBRARY_CHILD, probe, *paths], 600,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
    out = {line["path"]: line.get("margin") for line in lines}
    assert len(out) == len(paths), proc.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def mutation_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mutations")
    sources = _sources(folder)
    probe = folder / "probe.npy"
    np.save(probe, _probe_rows())
    originals = []
    for name, data in sources.items():
        (folder / name).write_bytes(data)
        originals.append(str(folder / name))
    paths = list(originals)
    for name, data in _mutations(sources):
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    lines, proc = _run_lines([sys.executable, "-c", _TREELENS_CHILD, str(MEMORY_CAP),
                              str(probe), *paths], 600)
    results = {line["path"]: line for line in lines}
    loaded = [p for p in paths[len(originals):] if p in results and "margin" in results[p]]
    library = _library_margins(originals, loaded, str(probe))
    return paths, originals, results, library, proc


def test_every_mutation_finishes(mutation_results):
    paths, _, results, _, proc = mutation_results
    assert len(paths) > 3000
    missing = [p for p in paths if p not in results]
    assert not missing, (f"the treelens child stopped at {missing[0]} (exit {proc.returncode})"
                         f":\n{proc.stderr[-3000:]}")


def test_originals_load_and_match_their_library(mutation_results):
    _, originals, results, library, _ = mutation_results
    for path in originals:
        assert "margin" in results[path], results[path].get("error")
        if path.endswith("dump.json"):
            continue  # the library cannot load its own dump
        assert library[path] is not None
        np.testing.assert_allclose(results[path]["margin"], library[path], rtol=1e-5,
                                   atol=1e-5, err_msg=path)


def test_refusals_are_exceptions_with_messages(mutation_results):
    paths, _, results, _, _ = mutation_results
    silent = [(p, r["error"]) for p, r in results.items()
              if "error" in r and not r["error"][1].strip()]
    assert not silent, f"exceptions without a message: {silent[:5]}"
    unexpected = [(p, r["error"]) for p, r in results.items()
                  if "error" in r and r["error"][0] in ("MemoryError", "RecursionError",
                                                        "SystemError", "OverflowError")]
    assert not unexpected, f"unclear exceptions: {unexpected[:5]}"


def test_accepted_mutations_are_finite_and_additive(mutation_results):
    _, _, results, _, _ = mutation_results
    accepted = {p: r for p, r in results.items() if "margin" in r}
    assert accepted
    bad = [p for p, r in accepted.items()
           if not (r["finite"] and r["additive"] and np.isfinite(r["margin"]).all())]
    assert not bad, f"silent non-finite or non-additive results: {bad[:5]}"


def test_accepted_mutations_predict_like_the_library(mutation_results):
    _, _, results, library, _ = mutation_results
    compared, differ = 0, []
    for path, margin in library.items():
        if margin is None:
            continue
        compared += 1
        mine = np.asarray(results[path]["margin"])
        theirs = np.asarray(margin).reshape(mine.shape) if np.size(margin) == mine.size else None
        if theirs is None or not np.allclose(mine, theirs, rtol=1e-5, atol=1e-5,
                                             equal_nan=True):
            differ.append(path)
    assert compared > 50
    assert not differ, f"{len(differ)} of {compared} differ from the library: {differ[:5]}"

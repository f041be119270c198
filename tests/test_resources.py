"""Threads and memory: thread counts within the usable cores, one explainer shared by many
Python threads, MemoryError before a result that cannot fit, no growth over repeated calls."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import treelens
from helpers import assert_bitwise
from spec_factory import TreeShape, random_spec
from treelens import _resources

N_CALLERS = 8


def _entry_points(case, forest, explainer, background):
    """name -> call(n_threads) for every entry point of the library."""
    X, y = case.X[:40], np.arange(40) % case.n_outputs  # class labels
    return {
        "predict": lambda t: forest.predict(X, n_threads=t),
        "shap_values": lambda t: forest.shap_values(X, n_threads=t),
        "interactions": lambda t: forest.shap_interaction_values(X, n_threads=t),
        "explainer": lambda t: explainer(t).shap_values(X),
        "background SHAP": lambda t: background(t).shap_values(X),
        "background interactions": lambda t: background(t).shap_interaction_values(X[:10]),
        "permutation importance": lambda t: treelens.permutation_importance(
            forest, X, y, n_repeats=3, random_state=1, n_threads=t).importances,
    }


def test_thread_counts_are_clamped_to_the_usable_cores():
    cores = _resources.usable_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))
    assert _resources.check_threads(None) == cores
    assert _resources.check_threads(1) == 1
    for huge in (2000, 2**31, 2**80, np.int64(2**40)):
        assert _resources.check_threads(huge) == cores
    for bad in (0, -5):
        with pytest.raises(ValueError, match="positive int"):
            _resources.check_threads(bad)
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError, match="positive int"):
            _resources.check_threads(bad)


def test_huge_thread_requests_run_and_match_one_thread(cases):
    case = cases["xgb_multiclass"]
    forest = treelens.load(case.model)
    for name, call in _entry_points(
            case, forest, lambda t: treelens.TreeExplainer(forest, n_threads=t),
            lambda t: treelens.TreeExplainer(forest, data=case.X[:30], n_threads=t)).items():
        ref = call(1)
        for threads in (2000, 2**31):
            assert_bitwise(call(threads), ref, f"{name} with n_threads={threads}")


def test_default_threads_follow_cpu_affinity():
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from treelens import _resources; print(_resources.check_threads(None))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["1"]


@pytest.mark.parametrize("files, cores", [
    ({"cpu.max": "150000 100000\n"}, 1),
    ({"cpu.max": "400000 100000\n"}, 4),
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_cgroup_cpu_quota(tmp_path, monkeypatch, files, cores):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(_resources, "_CGROUP", str(tmp_path))
    assert _resources._cgroup_cpu_quota() == cores


def test_cgroup_memory_room(tmp_path, monkeypatch):
    monkeypatch.setattr(_resources, "_CGROUP", str(tmp_path))
    assert _resources._cgroup_memory_room() is None
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("1000\n")
    assert _resources._cgroup_memory_room() is None
    (tmp_path / "memory.max").write_text("5000\n")
    assert _resources._cgroup_memory_room() == 4000
    assert _resources.available_memory() <= 4000


def _shared_entry_points(case, n_threads):
    """Every entry point, the explainers built once (with ``n_threads``) and shared."""
    forest = treelens.load(case.model)
    explainer = treelens.TreeExplainer(forest, n_threads=n_threads)
    background = treelens.TreeExplainer(forest, data=case.X[:30], n_threads=n_threads)
    return _entry_points(case, forest, lambda t: explainer, lambda t: background)


def test_one_explainer_shared_by_many_threads_is_bitwise_single_threaded(cases):
    calls = _shared_entry_points(cases["lgb_multiclass"], 1)
    expected = {name: call(1) for name, call in calls.items()}
    jobs = [(name, r) for r in range(3) for name in calls]

    def run(job):
        name, _ = job
        return name, calls[name](1 if job[1] == 0 else 2)

    with ThreadPoolExecutor(N_CALLERS) as pool:
        results = list(pool.map(run, jobs * (N_CALLERS // 3 + 1)))
    assert len(results) > N_CALLERS * len(calls) // 3
    for name, got in results:
        assert_bitwise(got, expected[name], f"{name} from {N_CALLERS} threads at once")


def _huge(case, n_rows):
    """A zero-stride ``[n_rows, m]`` view of one row: no memory behind the rows."""
    return np.broadcast_to(case.X[:1], (n_rows, case.n_features))


def test_results_that_cannot_fit_raise_memory_error_before_allocating(cases):
    case = cases["xgb_multiclass"]
    forest = treelens.load(case.model)
    n = 2**42  # 8 bytes x 3 outputs x 2**42 rows: 96 TiB at the least
    X, y = _huge(case, n), np.broadcast_to(np.float64(0.0), (n,))
    background = treelens.TreeExplainer(forest, data=case.X[:20])
    calls = {
        "predictions": lambda: forest.predict(X),
        "SHAP values": lambda: forest.shap_values(X),
        "interaction values": lambda: forest.shap_interaction_values(X),
        "background SHAP values": lambda: background.shap_values(X),
        "permutations and margins": lambda: treelens.permutation_importance(forest, X, y),
    }
    for what, call in calls.items():
        with pytest.raises(MemoryError, match=rf"{what} of shape \(.*{n:,}.*TiB.*available"):
            call()
    with pytest.raises(MemoryError, match=r"interaction values .* TiB"):
        background.shap_interaction_values(X)


def test_returned_permutations_are_counted(cases, monkeypatch):
    case = cases["xgb_multiclass"]
    forest = treelens.load(case.model)
    X = _huge(case, 40_000)
    size = 6 * 5 * 40_000 * 8
    monkeypatch.setattr(_resources, "available_memory", lambda: size - 1)
    with pytest.raises(MemoryError, match=r"returned permutations of shape \(6 x 5 x 40,000\)"):
        treelens.permutation_importance(forest, X, np.zeros(40_000), n_repeats=5,
                                        return_permutations=True)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_repeated_calls_do_not_grow_memory(cases):
    calls = _shared_entry_points(cases["xgb_multiclass"], 2)
    for call in calls.values():  # caches and allocator pools reach their size
        for _ in range(20):
            call(2)
    before = _rss_bytes()
    for _ in range(200):
        for call in calls.values():
            call(2)
    growth = _rss_bytes() - before
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 200 rounds of calls"


def test_deep_trees_count_their_working_memory(monkeypatch):
    """Path SHAP keeps depth x depth/2 quadrature values per thread: on a depth-300 chain
    that working memory, not the one-row result, is what cannot fit."""
    spec = random_spec(0, routing="float64", n_features=300, n_trees=1,
                       shape=TreeShape(max_depth=300, chain=True, p_repeat=0.0, p_leaf=0.0))
    forest = treelens.load(spec)
    assert forest.max_depth == 300
    X = np.zeros((1, 300))
    phi = forest.shap_values(X, n_threads=1)
    scratch = forest._core.shap_scratch_bytes(1)
    assert scratch > 2**20  # g, h and s: [301 levels, q] lanes of 4 doubles, q ~ unique / 2
    monkeypatch.setattr(_resources, "available_memory", lambda: scratch // 2)
    with pytest.raises(MemoryError, match=r"SHAP values of shape \(1 x 300 x 1\) need 2.34 KiB "
                                          r"\(plus .* MiB working memory\)"):
        forest.shap_values(X, n_threads=1)
    monkeypatch.undo()
    assert_bitwise(forest.shap_values(X, n_threads=1), phi, "deep chain after the refusal")

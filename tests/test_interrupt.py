"""Ctrl-C stops long core calls: a child process runs each long entry point, receives SIGINT
mid-call, and must raise KeyboardInterrupt promptly and stay usable, its memory released.

The bound on the interrupt latency is generous (a loaded machine delays both processes);
each call would run for many seconds uninterrupted, and the child reports it if it finished.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")

#: Seconds between SIGINT and the child's KeyboardInterrupt that the test accepts.
LATENCY_BOUND = 3.0
#: Seconds the parent waits after "start" so that the call is inside the core.
SETTLE = 1.0

CHILD = r"""
import sys
import numpy as np
import treelens
from spec_factory import TreeShape, random_spec
from treelens._spec import ROUTING_XGBOOST

def rss_mib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

spec = random_spec(0, routing=ROUTING_XGBOOST, n_features=20, n_trees=300,
                   shape=TreeShape(max_depth=8))
forest = treelens.load(spec)
X = np.random.default_rng(0).normal(size=(200_000, 20))
explainer = treelens.TreeExplainer(forest, data=X[:200])
calls = {
    "path SHAP": lambda: forest.shap_values(X),
    "interactions": lambda: forest.shap_interaction_values(X[:100_000]),
    "background SHAP": lambda: explainer.shap_values(X),
    "permutation importance": lambda: treelens.permutation_importance(
        forest, X[:100_000], X[:100_000, 0], n_repeats=50, random_state=0),
}
small = X[:8]
expected = forest.shap_values(small)
before = rss_mib()
for name, call in calls.items():
    print("start", name, flush=True)
    try:
        call()
        print("finished", name, flush=True)
    except KeyboardInterrupt:
        print("interrupted", name, flush=True)
growth = rss_mib() - before
same = np.array_equal(forest.shap_values(small), expected)
print(f"usable {same} {growth:.1f}", flush=True)
"""


def test_sigint_stops_long_calls_promptly():
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, "-c", CHILD], cwd=tests_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    latencies = {}
    try:
        for line in proc.stdout:
            words = line.split(maxsplit=1)
            if words[0] == "start":
                time.sleep(SETTLE)
                proc.send_signal(signal.SIGINT)
                sent = time.monotonic()
            elif words[0] == "interrupted":
                latencies[words[1].strip()] = time.monotonic() - sent
            elif words[0] == "finished":
                pytest.fail(f"{words[1].strip()} finished before SIGINT reached it")
            elif words[0] == "usable":
                _, same, growth = line.split()
                assert same == "True", "results changed after the interrupted calls"
                assert float(growth) < 200, f"RSS grew by {growth} MiB across interrupted calls"
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
    assert set(latencies) == {"path SHAP", "interactions", "background SHAP",
                              "permutation importance"}, latencies
    slow = {name: t for name, t in latencies.items() if t > LATENCY_BOUND}
    assert not slow, f"KeyboardInterrupt came late: {slow}"

"""``treelens explain`` refuses bad jobs cleanly and never leaves partial output.

Through the installed command: an output that would overwrite an input, an existing or
unwritable output, unknown kept / target columns, missing or non-numeric feature columns,
unreadable CSV rows (early and after batches were written) each exit with status 2, one
``treelens: error:`` line on stderr, and neither OUT nor OUT.partial on disk; an empty
input writes an empty output with the right columns; Ctrl-C exits with status 130 and
removes the partial output.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pacsv = pytest.importorskip("pyarrow.csv")
xgb = pytest.importorskip("xgboost")

from helpers import cli_command, run_cli  # noqa: E402

FEATURES = ["a", "b", "c", "d", "e"]



def _table(X, **extra):
    columns = dict(extra)
    columns.update({name: X[:, j] for j, name in enumerate(FEATURES)})
    return pa.table(columns)


def _partial(out):
    return out.with_name(out.name + ".partial")


def assert_refused(proc, out, *words):
    """Exit status 2, one ``treelens: error:`` line naming ``words``, no output left."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("treelens: error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists(), f"{out} was left behind"
    assert not _partial(out).exists(), f"{_partial(out)} was left behind"
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A named XGBoost regressor and 2,000 rows (id, y, features) as Parquet and CSV."""
    folder = tmp_path_factory.mktemp("cli_reliability")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 5))
    booster = xgb.train({"max_depth": 4, "nthread": 1},
                        xgb.DMatrix(X, X[:, 0] - X[:, 1] * X[:, 2], feature_names=FEATURES),
                        20)
    booster.save_model(str(folder / "model.json"))
    X = rng.normal(size=(2000, 5))
    table = _table(X, id=np.arange(2000, dtype=np.int64), y=X[:, 0])
    pq.write_table(table, folder / "data.parquet")
    pacsv.write_csv(table, folder / "data.csv")
    return folder


def test_output_is_an_input(work, tmp_path):
    data = tmp_path / "data.parquet"
    shutil.copy(work / "data.parquet", data)
    before = data.read_bytes()
    proc = run_cli("explain", work / "model.json", data, "-o", data, "--overwrite")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("treelens: error: ") and "would overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert data.read_bytes() == before
    assert not _partial(data).exists()

    folder = tmp_path / "rows"
    folder.mkdir()
    shutil.copy(work / "data.parquet", folder / "part-0.parquet")
    out = folder / "shap.parquet"
    assert_refused(run_cli("explain", work / "model.json", folder, "-o", out), out,
                   "would overwrite")
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]


def test_existing_output(work, tmp_path):
    out = tmp_path / "shap.csv"
    out.write_text("precious\n")
    proc = run_cli("explain", work / "model.json", work / "data.parquet", "-o", out)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr, proc.stderr
    assert proc.stderr.startswith("treelens: error: ") and "Traceback" not in proc.stderr
    assert out.read_text() == "precious\n"
    assert not _partial(out).exists()

    proc = run_cli("explain", work / "model.json", work / "data.parquet", "-o", out,
                "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert pacsv.read_csv(out).num_rows == 2000
    assert not _partial(out).exists()


def test_unwritable_directory(work, tmp_path):
    """A directory the process may not write to; as root (whom permissions do not stop)
    /proc, where no file can be created."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            folder = Path("/proc")
            words = ["out.parquet.partial"]
        else:
            words = ["not writable"]
        out = folder / "out.parquet"
        assert_refused(run_cli("explain", work / "model.json", work / "data.parquet", "-o", out),
                       out, *words)
    finally:
        (tmp_path / "locked").chmod(0o700)


@pytest.mark.parametrize("problem", ["keep", "target", "missing_feature", "string_feature",
                                     "ragged_csv", "ragged_csv_late", "text_in_csv_late"])
def test_bad_input(problem, work, tmp_path):
    data, options, words = work / "data.parquet", [], []
    if problem == "keep":
        options, words = ["--keep", "id,nope"], ["nope"]
    elif problem == "target":
        options, words = ["--target", "nope"], ["nope"]
    elif problem == "missing_feature":
        data, words = tmp_path / "rows.parquet", ["c"]
        pq.write_table(pq.read_table(work / "data.parquet").drop(["c"]), data)
    elif problem == "string_feature":
        table = pq.read_table(work / "data.parquet")
        text = pa.array([str(v) for v in table.column("c").to_pylist()], pa.string())
        data, words = tmp_path / "rows.parquet", ["'c'"]
        pq.write_table(table.set_column(table.column_names.index("c"), "c", text), data)
    elif problem == "ragged_csv":
        data = tmp_path / "rows.csv"
        lines = (work / "data.csv").read_text().splitlines()
        lines[5] = ",".join(lines[5].split(",")[:-1])
        data.write_text("\n".join(lines) + "\n")
    else:
        # Past the reader's first 8 MiB block: some batches are written before it fails.
        rng = np.random.default_rng(1)
        n = 150_000
        data = tmp_path / "rows.csv"
        pacsv.write_csv(_table(rng.normal(size=(n, 5)), id=np.arange(n)), data)
        assert data.stat().st_size > (9 << 20)
        with open(data, "a") as fh:
            fh.write("7,1.0,2.0\n" if problem == "ragged_csv_late"
                     else "7,1.0,2.0,oops,4.0,5.0\n")
        options = ["--batch-rows", 5000]
    out = tmp_path / "shap.parquet"
    assert_refused(run_cli("explain", work / "model.json", data, "-o", out, *options), out,
                   *words)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".npy"])
def test_empty_input(suffix, work, tmp_path):
    data = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(work / "data.parquet").slice(0, 0), data)
    out = tmp_path / f"shap{suffix}"
    keep = [] if suffix == ".npy" else ["--keep", "id"]
    proc = run_cli("explain", work / "model.json", data, "-o", out, "--prediction", *keep)
    assert proc.returncode == 0, proc.stderr
    assert "explained 0 rows" in proc.stdout
    assert not _partial(out).exists()
    columns = FEATURES + ["expected_value", "margin"]
    if suffix == ".npy":
        array = np.load(out)
        assert array.shape == (0, len(columns)) and array.dtype == np.float64
        return
    if suffix == ".parquet":
        table = pq.read_table(out)
        assert table.schema.field("id").type == pa.int64()
        assert all(table.schema.field(c).type == pa.float64() for c in columns)
    else:
        header = out.read_text().splitlines()
        assert len(header) == 1, header
        table = pacsv.read_csv(out)
    assert table.num_rows == 0
    assert table.column_names == ["id"] + columns


def test_dataset_with_an_empty_file(work, tmp_path):
    table = pq.read_table(work / "data.parquet")
    folder = tmp_path / "rows"
    folder.mkdir()
    for i, (start, n) in enumerate([(0, 700), (700, 0), (700, 600)]):
        pq.write_table(table.slice(start, n), folder / f"part-{i}.parquet")
    out = tmp_path / "shap.parquet"
    proc = run_cli("explain", work / "model.json", folder, "-o", out, "--keep", "id")
    assert proc.returncode == 0, proc.stderr
    got = pq.read_table(out)
    assert got.column("id").to_pylist() == list(range(1300))


def test_ctrl_c_removes_partial_output(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 5))
    booster = xgb.train({"max_depth": 6, "eta": 0.1, "nthread": 2},
                        xgb.DMatrix(X, np.sin(X[:, 0]) + X[:, 1] * X[:, 2],
                                    feature_names=FEATURES), 200)
    booster.save_model(str(tmp_path / "big.json"))
    n = 300_000
    pq.write_table(_table(rng.normal(size=(n, 5))), tmp_path / "big.parquet")
    out = tmp_path / "shap.parquet"
    proc = subprocess.Popen(cli_command() + ["explain", str(tmp_path / "big.json"),
                                          str(tmp_path / "big.parquet"), "-o", str(out),
                                          "--batch-rows", "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _partial(out).exists():
            assert proc.poll() is None, ("finished before it could be interrupted",
                                         proc.communicate())
            assert time.monotonic() < deadline, "no partial output after 60 s"
            time.sleep(0.01)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, stdout, stderr)
    assert "Traceback" not in stderr, stderr
    assert "interrupted" in stderr
    assert not out.exists()
    assert not _partial(out).exists()

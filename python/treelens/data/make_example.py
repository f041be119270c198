"""Regenerate the bundled example: a synthetic credit-risk data set and an XGBoost model.

    python -m treelens.data.make_example

Writes ``example.csv`` (2000 rows: a ``customer_id``, 10 numeric features with about 3%
missing values, and the 0/1 label ``defaulted``) and
``example_model.json`` (XGBoost ``binary:logistic``, 50 trees of depth 4) next to this
file. Needs xgboost; the output is deterministic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_ROWS = 2000
FEATURES = ["age", "income", "debt_ratio", "credit_lines", "late_payments",
            "years_employed", "loan_amount", "savings", "utilization", "inquiries"]


def make_data(seed: int = 7) -> "tuple[np.ndarray, np.ndarray]":
    """Features float64 ``[N_ROWS, 10]`` (NaN = missing) and 0/1 default labels ``[N_ROWS]``."""
    rng = np.random.default_rng(seed)
    age = rng.integers(21, 75, N_ROWS).astype(float)
    income = np.round(rng.lognormal(10.8, 0.5, N_ROWS), -2)
    debt_ratio = np.round(rng.beta(2, 5, N_ROWS), 3)
    credit_lines = rng.poisson(4, N_ROWS).astype(float)
    late_payments = rng.poisson(0.4, N_ROWS).astype(float)
    years_employed = np.minimum(np.round(rng.exponential(6, N_ROWS), 1), age - 18)
    loan_amount = np.round(rng.lognormal(9.5, 0.7, N_ROWS), -2)
    savings = np.round(rng.lognormal(8.5, 1.2, N_ROWS), -1)
    utilization = np.round(rng.uniform(0, 1, N_ROWS), 3)
    inquiries = rng.poisson(1.0, N_ROWS).astype(float)
    X = np.column_stack([age, income, debt_ratio, credit_lines, late_payments,
                         years_employed, loan_amount, savings, utilization, inquiries])
    logit = (-2.0 + 3.0 * debt_ratio + 0.8 * late_payments + 1.5 * (utilization > 0.8)
             + 0.3 * inquiries - 0.6 * np.log(income / 50000.0)
             + 0.5 * np.log(loan_amount / 15000.0) - 0.02 * (age - 40)
             - 0.3 * np.log1p(savings / 5000.0))
    y = (rng.uniform(size=N_ROWS) < 1.0 / (1.0 + np.exp(-logit))).astype(float)
    X[rng.uniform(size=X.shape) < 0.03] = np.nan
    return X, y


def main() -> None:
    import xgboost as xgb

    X, y = make_data()
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1,
              "subsample": 1.0, "nthread": 1, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(X, y, feature_names=FEATURES),
                        num_boost_round=50)
    booster.save_model(str(HERE / "example_model.json"))
    write_csv(X, y)


def write_csv(X: np.ndarray, y: np.ndarray) -> None:
    """``example.csv``: customer_id, the features, defaulted."""
    with open(HERE / "example.csv", "w", encoding="utf-8") as fh:
        fh.write(",".join(["customer_id"] + FEATURES + ["defaulted"]) + "\n")
        for i, (row, label) in enumerate(zip(X, y)):
            values = ",".join("nan" if v != v else f"{v:.10g}" for v in row)
            fh.write(f"C{i + 1:05d},{values},{label:.0f}\n")


if __name__ == "__main__":
    main()

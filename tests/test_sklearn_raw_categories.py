"""HistGradientBoosting categorical columns given as raw numeric values (not 0..k-1)."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingRegressor

import treelens


@pytest.fixture(scope="module")
def hgb():
    rng = np.random.default_rng(3)
    n = 1500
    cat = rng.choice([3.0, 7.0, 11.0, 20.0], size=n)
    X = np.c_[cat, rng.normal(size=n), rng.normal(size=n)]
    y = (cat == 7) * 2.0 - (cat == 11) + X[:, 1] + rng.normal(size=n) * 0.1
    model = HistGradientBoostingRegressor(categorical_features=[0], max_iter=20).fit(X, y)
    Xt = X[:120].copy()
    Xt[:5, 0] = 5.0      # unseen category -> missing
    Xt[5:10, 0] = np.nan
    return model, Xt


def test_numpy_pandas_sparse_match_sklearn(hgb):
    model, Xt = hgb
    ex = treelens.TreeExplainer(model)
    want = model.predict(Xt)
    np.testing.assert_array_equal(ex.predict(Xt), want)
    np.testing.assert_array_equal(ex.predict(pd.DataFrame(Xt)), want)
    dense = np.nan_to_num(Xt[10:])
    np.testing.assert_array_equal(ex.predict(sp.csr_matrix(dense)), model.predict(dense))


def test_raw_categories_additive_and_input_independent(hgb):
    model, Xt = hgb
    ex = treelens.TreeExplainer(model)
    phi = ex.shap_values(Xt)
    np.testing.assert_allclose(phi.sum(1) + ex.expected_value, ex.predict(Xt), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ex.shap_values(pd.DataFrame(Xt)), phi)

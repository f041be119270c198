"""treelens: fast exact TreeSHAP values and predictions for XGBoost, LightGBM and
scikit-learn tree ensembles.

>>> import treelens
>>> explainer = treelens.TreeExplainer(model)   # or a path to a saved model file
>>> phi = explainer.shap_values(X)              # float64 [n, m], or [n, m, k]
>>> out = treelens.explain_table(model, arrow_table, keep=["id"], top_k=3)
"""
from ._build import build_info
from ._explanation import Explanation
from .batch import explain_batches, explain_table
from .explainer import AdditivityError, TreeExplainer
from .model import Forest, load
from .permutation import permutation_importance

__all__ = ["AdditivityError", "Explanation", "Forest", "TreeExplainer", "build_info",
           "explain_batches", "explain_table", "load", "permutation_importance"]
__version__ = "0.1.0"

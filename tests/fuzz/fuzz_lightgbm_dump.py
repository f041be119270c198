"""atheris harness: LightGBM dump_model() JSON files through ``treelens.load`` (see _harness.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402

if __name__ == "__main__":
    _harness.main("lightgbm_dump")

"""Hyperparameter and augmentation search on Optuna, scored on the Keras model or on a deployed .tflite.

`run_search(TuneSettings(...))` is the API; `tflkit tune` (tflkit/cli/tune.py) is its command. Optuna is an
optional extra (`pip install 'tflkit[tune]'`); nothing here imports it until a search starts.
"""

from tflkit.tune.objective import Objective
from tflkit.tune.search import TuneSettings, run_search

__all__ = ["Objective", "TuneSettings", "run_search"]

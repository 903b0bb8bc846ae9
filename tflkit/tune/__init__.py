"""Hyperparameter and augmentation search on Optuna, scored on the Keras model or on a deployed .tflite.

`tflkit.api.tune` is the API (tflkit.tune.search.run_search under it); `tflkit tune` (tflkit/cli/tune.py) its
command. Optuna is an optional extra (`pip install 'tflkit[tune]'`); nothing here imports it until a search starts.
"""

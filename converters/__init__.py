"""Keras to TFLite: recipes, calibration, conversion, MAC counting."""

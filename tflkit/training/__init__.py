"""Training and evaluation of Keras models (layer 3)."""

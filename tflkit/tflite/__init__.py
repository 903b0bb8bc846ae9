"""Readers of .tflite files (runtime, inspection, MACs, arena, metadata, the child check); no TensorFlow."""

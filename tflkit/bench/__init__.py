"""Host benchmarking of .tflite files with LiteRT (layer 5)."""

"""The bottom layer: errors, files, config, processes, the machine, records; no TensorFlow."""

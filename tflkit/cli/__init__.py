"""The `tflkit` command: a thin shell over the Python API (tflkit.api)."""

"""The stages that chain a run: train, convert, evaluate, bench, report (top layer)."""

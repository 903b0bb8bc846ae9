"""One report of several studies (`tflkit study report A B --into C`): their cells side by side, so that claims
across datasets can be checked when each dataset ran as a study of its own. Hand-built stores, no TensorFlow."""

import subprocess
import sys

import pytest

from tflkit.core.errors import UsageError
from tflkit.study.report import write_study_report
from tflkit.study.spec import Cell
from tflkit.study.store import open_store


def _study(out_dir, name, dataset, figures):
    """figures: model -> (scratch fp32 top-1, imagenet fp32 top-1)."""
    with open_store(out_dir) as store:
        store.set_meta("name", name)
        store.set_meta("spec", {"name": name, "training": {"epochs": 2, "image_size": 64}})
        for model, (scratch, pretrained) in figures.items():
            for regime, top1 in (("scratch", scratch), ("imagenet", pretrained)):
                cell = Cell(f"{model}.{dataset}.{regime}", model, dataset, regime,
                            {"model": model, "dataset": dataset, "pretrained": "none" if regime == "scratch"
                             else "imagenet"})
                store.put_cell(cell, out_dir / "cells" / cell.id)
                store.put_file(cell.id, "fp32", status="ok", top1=top1, size_bytes=1_000_000)
                store.put_latency(cell.id, "fp32", "host", "xnnpack", 1, status="ok", median_ms=1.0)
    return out_dir


def test_a_joined_report_checks_the_claim_across_datasets(tmp_path):
    easy = _study(tmp_path / "easy", "easy_study", "easy", {"squeezenet1_1": (0.50, 0.60)})
    hard = _study(tmp_path / "hard", "hard_study", "hard", {"squeezenet1_1": (0.10, 0.30)})
    paths = write_study_report(easy, log=lambda *_: None, more=[hard], into=tmp_path / "both")
    md = paths["md"].read_text()
    assert md.startswith("# Study easy_study + hard_study\n")
    assert "Training budget: easy_study: epochs 2, image_size 64; hard_study: epochs 2, image_size 64." in md
    assert "Hardest dataset: hard (mean scratch top-1 10.00%)." in md  # only a joined report has two datasets
    assert paths["csv"].read_text().count("squeezenet1_1,") == 4
    assert not (easy / "report.md").exists()  # the studies' own reports are left alone


def test_a_joined_report_refuses_shared_cells_and_a_missing_or_shared_destination(tmp_path):
    one = _study(tmp_path / "one", "one", "easy", {"squeezenet1_1": (0.5, 0.6)})
    two = _study(tmp_path / "two", "two", "easy", {"squeezenet1_1": (0.5, 0.6)})
    with pytest.raises(UsageError, match="cell squeezenet1_1.easy.scratch is in both"):
        write_study_report(one, more=[two], into=tmp_path / "out")
    with pytest.raises(UsageError, match="needs --into DIR"):
        write_study_report(one, more=[two])
    with pytest.raises(UsageError, match="is one of the studies"):
        write_study_report(one, more=[two], into=two)
    done = subprocess.run([sys.executable, "-m", "tflkit", "study", "report", str(one), str(two)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--into" in done.stderr


def test_the_same_study_twice_is_one_line(tmp_path):
    one = _study(tmp_path / "one", "one", "easy", {"squeezenet1_1": (0.5, 0.6)})
    with pytest.raises(UsageError, match="is given twice"):
        write_study_report(one, more=[tmp_path / "one"], into=tmp_path / "out")

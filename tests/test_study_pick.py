"""`tflkit pick` on a hand-built tiny study.db: the expected candidates, order, Pareto front and reasons are worked
out by hand below from the figures written into the store (no TensorFlow: the rows are what the study would record).
"""

import json

import pytest

from tflkit.core.errors import UsageError
from tflkit.study.pick import format_pick, pick
from tflkit.study.report import load_rows
from tflkit.study.spec import Cell
from tflkit.study.store import open_store

HISTORY = {"top1": [0.3, 0.5, 0.6], "val_top1": [0.25, 0.45, 0.55], "loss": [2.0, 1.4, 1.1],
           "val_loss": [2.1, 1.5, 1.2]}
PROVENANCE = {"tflkit": "0.3.0", "tensorflow": "2.21.0", "litert": "2.3.0", "cpu": "Test CPU, 2 cores", "seed": 0}

# (model, dataset, regime, pretrained) -> {recipe: (top1, host t1 median ms, size bytes)}; None: not measured
CELLS = {
    ("mobilenetv3_small_100", "shapes", "scratch", "none"): {
        "fp32": (0.80, 1.0, 2_000_000), "static_wi8_ai8": (0.78, 1.5, 600_000)},
    ("squeezenet1_1", "shapes", "scratch", "none"): {
        "fp32": (0.70, 0.5, 1_000_000), "fp16": (0.76, 0.6, 500_000)},
    ("efficientnetv2_s", "shapes", "scratch", "none"): {
        "fp32": (0.90, 8.0, 80_000_000), "static_wi8_ai8": (0.89, None, 21_000_000)},
    ("resnet18", "shapes", "imagenet", "imagenet"): {
        "fp32": (0.85, 3.0, 45_000_000)},
    ("mobilenetv3_small_100", "cifar10", "scratch", "none"): {
        "fp32": (0.50, 1.0, 2_000_000)},
}


def build_tiny_study(out_dir):
    """A study.db as the runner writes it: cells, files, host (and one phone) latencies, stages with provenance;
    one recipe that failed to convert, one whose eval stage failed, one benchmarked only at 2 threads."""
    with open_store(out_dir) as store:
        store.set_meta("name", "tiny")
        store.set_meta("spec", {"name": "tiny", "training": {"epochs": 3, "image_size": 32, "batch_size": 32}})
        for (model, dataset, regime, pretrained), recipes in CELLS.items():
            cell = Cell(f"{model}.{dataset}.{regime}", model, dataset, regime,
                        {"model": model, "dataset": dataset, "pretrained": pretrained, "epochs": 3})
            store.put_cell(cell, out_dir / "runs" / cell.id)
            store.finish_stage(cell.id, "train", "ok", wall_s=12.0, cpu_s=20.0, result={"history": HISTORY},
                               provenance=PROVENANCE)
            for recipe, (top1, latency, size) in recipes.items():
                store.put_file(cell.id, recipe, status="ok", path=f"{cell.id}.{recipe}.tflite", sha256="ab" * 32,
                               size_bytes=size, params=1_000_000, macs=5_000_000, top1=top1, top5=min(1.0, top1 + 0.1))
                if latency is not None:
                    store.put_latency(cell.id, recipe, "host", "xnnpack", 1, status="ok", median_ms=latency,
                                      p95_ms=latency * 1.2, count=50)
        store.put_latency("efficientnetv2_s.shapes.scratch", "static_wi8_ai8", "host", "xnnpack", 2, status="ok",
                          median_ms=5.0, p95_ms=6.0)
        store.put_file("squeezenet1_1.shapes.scratch", "static_wi8_ai8", status="convert_failed",
                       message="converter: unsupported op")
        store.put_file("resnet18.shapes.imagenet", "static_wi8_ai8", status="ok", size_bytes=11_500_000)
        store.finish_stage("resnet18.shapes.imagenet", "eval/static_wi8_ai8", "failed", message="out of memory")
        store.put_latency("mobilenetv3_small_100.shapes.scratch", "fp32", "android:R5CT1", "gpu", 1,
                          device="Pixel 7", status="ok", mean_ms=4.0, peak_memory_mb=12.5)
    return load_rows(out_dir)


@pytest.fixture()
def rows(tmp_path):
    return build_tiny_study(tmp_path)


def _names(candidates):
    return [(c["model"], c["dataset"], c["recipe"]) for c in candidates]


def test_pick_under_constraints_matches_the_hand_computed_answer(rows):
    result = pick(rows, max_latency_ms=2.0, max_size_mb=50, min_top1=0.75, dataset="shapes")
    assert _names(result["feasible"]) == [("mobilenetv3_small_100", "shapes", "fp32"),
                                          ("mobilenetv3_small_100", "shapes", "static_wi8_ai8"),
                                          ("squeezenet1_1", "shapes", "fp16")]
    # mobilenet's int8 (0.78 at 1.5 ms) is beaten by its fp32 (0.80 at 1.0 ms) on both axes
    assert _names(result["pareto"]) == [("squeezenet1_1", "shapes", "fp16"),
                                        ("mobilenetv3_small_100", "shapes", "fp32")]
    excluded = {(c["model"], c["recipe"]): c["reasons"] for c in result["excluded"]}
    assert excluded == {
        ("squeezenet1_1", "fp32"): ["top-1 70.00% < 75.00%"],
        ("squeezenet1_1", "static_wi8_ai8"): ["status convert_failed: converter: unsupported op"],
        ("efficientnetv2_s", "fp32"): ["latency 8 ms > 2 ms", "size 80 MB > 50 MB"],
        ("efficientnetv2_s", "static_wi8_ai8"): ["latency not measured on host at 1 thread"],
        ("resnet18", "fp32"): ["latency 3 ms > 2 ms"],
        ("resnet18", "static_wi8_ai8"): ["status eval_failed: eval failed: out of memory"],
    }
    best = result["feasible"][0]
    assert best == {"model": "mobilenetv3_small_100", "dataset": "shapes", "regime": "scratch", "recipe": "fp32",
                    "cell": "mobilenetv3_small_100.shapes.scratch", "status": "ok", "top1": 0.80, "latency_ms": 1.0,
                    "latency_statistic": "median", "size_mb": 2.0, "flash_kb": 2e6 / 1024, "arena_kb": None,
                    "tflm_arena_kb": None, "fits_on": None, "rss_mb": None,  # no mcu stage: no TFLM figures
                    "top1_lo": None, "top1_hi": None, "top1_sd": None,  # no eval_images in this database: no interval
                    "seeds": None, "convergence": "still improving"}
    assert result["constraints"]["min_top1"] == 0.75
    assert pick(rows, max_latency_ms=2.0, max_size_mb=50, min_top1=75, dataset="shapes") == result  # 75 means 75%
    assert pick(rows, max_latency_ms=2.0, max_size_mb=50, min_top1=0.75, dataset="shapes",
                delegate="xnnpack")["feasible"] == result["feasible"]  # the host's default delegate, named


def test_pick_without_constraints_ranks_everything_measured_and_fronts_each_dataset(rows):
    result = pick(rows)
    assert _names(result["feasible"]) == [("efficientnetv2_s", "shapes", "fp32"), ("resnet18", "shapes", "fp32"),
                                          ("mobilenetv3_small_100", "shapes", "fp32"),
                                          ("mobilenetv3_small_100", "shapes", "static_wi8_ai8"),
                                          ("squeezenet1_1", "shapes", "fp16"), ("squeezenet1_1", "shapes", "fp32"),
                                          ("mobilenetv3_small_100", "cifar10", "fp32")]
    # accuracies on different datasets are not compared: cifar10's only file is its own front
    assert _names(result["pareto"]) == [("mobilenetv3_small_100", "cifar10", "fp32"),
                                        ("squeezenet1_1", "shapes", "fp32"), ("squeezenet1_1", "shapes", "fp16"),
                                        ("mobilenetv3_small_100", "shapes", "fp32"), ("resnet18", "shapes", "fp32"),
                                        ("efficientnetv2_s", "shapes", "fp32")]
    assert sorted(_names(result["excluded"])) == [("efficientnetv2_s", "shapes", "static_wi8_ai8"),
                                                  ("resnet18", "shapes", "static_wi8_ai8"),
                                                  ("squeezenet1_1", "shapes", "static_wi8_ai8")]


def test_a_missing_latency_is_a_reason_never_a_pass(rows):
    result = pick(rows, threads=2, recipes=["static_wi8_ai8"])
    assert _names(result["feasible"]) == [("efficientnetv2_s", "shapes", "static_wi8_ai8")]
    reasons = {c["model"]: c["reasons"] for c in result["excluded"]}
    assert reasons["mobilenetv3_small_100"] == ["latency not measured on host at 2 threads"]
    assert reasons["squeezenet1_1"] == ["status convert_failed: converter: unsupported op"]


def test_phone_target_uses_the_mean_where_the_phone_printed_no_median(rows):
    result = pick(rows, target="pixel_7", delegate="gpu", dataset="shapes")
    assert _names(result["feasible"]) == [("mobilenetv3_small_100", "shapes", "fp32")]
    assert result["feasible"][0]["latency_ms"] == 4.0 and result["feasible"][0]["latency_statistic"] == "mean"
    assert result["constraints"]["latency_column"] == "pixel_7_gpu_median_ms_t1"
    others = [c for c in result["excluded"] if c["status"] == "ok"]
    assert others and all(c["reasons"] == ["latency not measured on pixel_7 (gpu) at 1 thread"] for c in others)
    assert "(mean)" in format_pick(result)


def test_bad_choices_are_one_line_usage_errors(rows):
    with pytest.raises(UsageError, match="no latency measured on host at 4 threads.*host at 1, 2 threads"):
        pick(rows, threads=4)
    with pytest.raises(UsageError, match="dataset 'cifar100' is not in this study; choose from: cifar10, shapes"):
        pick(rows, dataset="cifar100")
    with pytest.raises(UsageError, match="recipe 'int8'"):
        pick(rows, recipes=["int8"])


def test_no_study_db_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no study.db in"):
        load_rows(tmp_path)
    assert not (tmp_path / "study.db").exists()  # looking did not create one


def test_format_pick_and_json(rows):
    result = pick(rows, max_latency_ms=2.0, min_top1=0.75, dataset="shapes")
    text = format_pick(result)
    lines = text.splitlines()
    assert lines[0] == "Constraints: target host at 1 thread; latency <= 2 ms; top-1 >= 75.00%; dataset shapes"
    star = next(line for line in lines if "squeezenet1_1" in line and "fp16" in line)
    assert star.startswith("*") and "76.00" in star and "0.600" in star
    assert "efficientnetv2_s  shapes   scratch   fp32            latency 8 ms > 2 ms" in text
    assert json.loads(json.dumps(result)) == result  # what `tflkit pick --json` prints


def test_memory_budgets_exclude_what_exceeds_or_was_not_measured(rows):
    for row in rows:
        if row["model"] == "mobilenetv3_small_100":
            row.update(arena_bytes=300 * 1024, host_rss_delta_mb=12.0)
        elif row["model"] == "squeezenet1_1":
            row.update(arena_bytes=900 * 1024, host_rss_delta_mb=30.0)
    result = pick(rows, max_latency_ms=2.0, dataset="shapes", max_arena_kb=512, max_rss_mb=20)
    assert {c["model"] for c in result["feasible"]} == {"mobilenetv3_small_100"}
    reasons = {(c["model"], c["recipe"]): c["reasons"] for c in result["excluded"]}
    assert reasons[("squeezenet1_1", "fp16")] == ["arena 900 KB > 512 KB", "memory 30 MB > 20 MB"]
    assert "arena not measured" in reasons[("resnet18", "fp32")]
    assert "memory not measured on host" in reasons[("resnet18", "fp32")]
    flash = pick(rows, max_latency_ms=2.0, dataset="shapes", max_flash_kb=1)
    assert not flash["feasible"] and all(any(r.startswith("flash") for r in c["reasons"])
                                         for c in flash["excluded"] if c["status"] == "ok" and c["latency_ms"])
    text = format_pick(flash, show_excluded=False)
    assert "No candidate meets every constraint." in text and "(--show-excluded lists them)" in text
    assert "by flash" in text and "efficientnetv2_s" not in text


def test_pick_exits_1_when_nothing_fits(tmp_path):
    import subprocess
    import sys

    build_tiny_study(tmp_path)
    fits = subprocess.run([sys.executable, "-m", "tflkit", "pick", str(tmp_path), "--max-latency-ms", "2"],
                          capture_output=True, text=True)
    assert fits.returncode == 0 and "Feasible" in fits.stdout and "--show-excluded" in fits.stdout
    none = subprocess.run([sys.executable, "-m", "tflkit", "pick", str(tmp_path), "--max-latency-ms", "0.001",
                           "--json"], capture_output=True, text=True)
    assert none.returncode == 1 and json.loads(none.stdout)["ok"] is False

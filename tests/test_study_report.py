"""The study report: its files from a hand-built study.db, and the claims, each true, false and undetermined, from
hand-built rows whose verdicts are worked out by hand (no TensorFlow)."""

import copy
import csv
import io
import json

import pytest
from test_study_pick import build_tiny_study

from tflkit.study.claims import check_claims
from tflkit.study.report import write_study_report

# dataset -> model -> (scratch fp32 top-1, ImageNet fp32 top-1, host t1 ms, fp32 size bytes)
# easy: every model gains 4-5 points; hard (lowest scratch top-1): every model gains 12-20 points;
# MobileNetV3-Small: the most accurate within 2x SqueezeNet's 0.5 ms (ShuffleNetV2 at 0.8 ms is less accurate)
PAPER = {
    "easy": {"efficientnetv2_s": (0.90, 0.95, 10.0, 80e6), "resnet18": (0.87, 0.92, 3.0, 45e6),
             "mobilenetv3_small_100": (0.85, 0.90, 0.9, 6e6), "squeezenet1_1": (0.80, 0.84, 0.5, 3e6),
             "shufflenetv2_x1_0": (0.83, 0.88, 0.8, 5e6)},
    "hard": {"efficientnetv2_s": (0.40, 0.60, 10.0, 80e6), "resnet18": (0.38, 0.55, 3.0, 45e6),
             "mobilenetv3_small_100": (0.35, 0.50, 0.9, 6e6), "squeezenet1_1": (0.30, 0.42, 0.5, 3e6),
             "shufflenetv2_x1_0": (0.33, 0.46, 0.8, 5e6)},
}


def _row(model, dataset, regime, top1, ms, size, recipe="fp32"):
    return {"cell": f"{model}.{dataset}.{regime}", "model": model, "dataset": dataset, "regime": regime,
            "pretrained": "none" if regime == "scratch" else "imagenet", "recipe": recipe, "status": "ok",
            "message": "", "top1": top1, "size_bytes": size, "host_median_ms_t1": ms,
            "eval_images": 10000, "convergence": "converged", "last_gain": 0.2, "epochs": 50}


def paper_rows(table=PAPER):
    rows = []
    for dataset, models in table.items():
        for model, (scratch, pretrained, ms, size) in models.items():
            rows.append(_row(model, dataset, "scratch", scratch, ms, size))
            rows.append(_row(model, dataset, "imagenet", pretrained, ms, size))
            # an int8 file faster and smaller than anything: the claims compare fp32 files only
            rows.append(_row(model, dataset, "scratch", scratch - 0.01, 0.1, 1e5, recipe="static_wi8_ai8"))
    return rows


def verdicts(rows):
    return [c["verdict"] for c in check_claims(rows)]


def test_every_claim_true_when_the_numbers_agree():
    claims = check_claims(paper_rows())
    assert [c["verdict"] for c in claims] == ["true", "true", "true", "true"]
    for c in claims:
        assert c["criterion"] and c["evidence"] and c["figures"]
    assert claims[0]["figures"]["hard"]["efficientnetv2_s"] == 0.60  # its best regime
    assert "within 2x the fastest" in claims[1]["criterion"]
    assert claims[3]["figures"]["hardest"] == "hard"
    assert claims[3]["figures"]["gain"]["squeezenet1_1/hard"] == pytest.approx(0.12)


def _with(change):
    table = copy.deepcopy(PAPER)
    change(table)
    return paper_rows(table)


def test_efficientnet_beaten_on_one_dataset_is_false():
    rows = _with(lambda t: t["hard"].update(resnet18=(0.38, 0.65, 3.0, 45e6)))
    claim = check_claims(rows)[0]
    assert claim["verdict"] == "false"
    assert "hard: efficientnetv2_s 60.00% is beaten by resnet18 65.00%" in claim["evidence"]


def test_a_faster_more_accurate_model_makes_the_balance_claim_false():
    # shufflenet: 0.7 ms (within 2x of squeezenet's 0.5) and more accurate than MobileNetV3-Small
    rows = _with(lambda t: [t[d].update(shufflenetv2_x1_0=(s, p, 0.7, 5e6))
                            for d, (s, p) in (("easy", (0.86, 0.91)), ("hard", (0.36, 0.52)))])
    claims = check_claims(rows)
    assert claims[1]["verdict"] == "false"
    assert "dominated by shufflenetv2_x1_0" in claims[1]["evidence"]
    assert claims[2]["verdict"] == "true"  # squeezenet is still the fastest and smallest


def test_mobilenet_outside_twice_the_fastest_is_false():
    rows = _with(lambda t: [t[d].update(squeezenet1_1=(*t[d]["squeezenet1_1"][:2], 0.3, 3e6)) for d in t])
    claim = check_claims(rows)[1]
    assert claim["verdict"] == "false"
    assert "itself outside 2x the fastest" in claim["evidence"]


def test_a_smaller_model_than_squeezenet_is_false():
    rows = _with(lambda t: t["easy"].update(mobilenetv3_small_100=(0.85, 0.90, 0.9, 2e6)))
    claim = check_claims(rows)[2]
    assert claim["verdict"] == "false"
    assert "easy: fp32 file size: squeezenet1_1 3.000 MB, matched or beaten by mobilenetv3_small_100" \
        in claim["evidence"]


def test_pretraining_that_loses_or_gains_most_on_the_easy_dataset_is_false():
    rows = _with(lambda t: t["easy"].update(resnet18=(0.87, 0.86, 3.0, 45e6)))
    claim = check_claims(rows)[3]
    assert claim["verdict"] == "false" and "resnet18 on easy (-1.00 pts)" in claim["evidence"]
    rows = _with(lambda t: t["easy"].update(resnet18=(0.50, 0.92, 3.0, 45e6)))  # +42 points on easy
    claim = check_claims(rows)[3]
    assert claim["verdict"] == "false"
    assert "resnet18: gain +17.00 pts on hard is below +42.00 pts on easy" in claim["evidence"]


def test_missing_models_datasets_or_figures_are_undetermined_and_named():
    rows = [r for r in paper_rows() if not (r["model"] == "efficientnetv2_s" and r["dataset"] == "hard")]
    claim = check_claims(rows)[0]
    assert claim["verdict"] == "undetermined" and "hard: efficientnetv2_s has no fp32 top-1" in claim["evidence"]

    rows = [r for r in paper_rows() if r["model"] != "squeezenet1_1"]
    claim = check_claims(rows)[2]
    assert claim["verdict"] == "undetermined" and claim["evidence"] == "SqueezeNet is not in the study."

    rows = [{k: v for k, v in r.items() if k != "host_median_ms_t1"} for r in paper_rows()]
    claims = check_claims(rows)
    assert claims[1]["verdict"] == "undetermined" and "no host latency" in claims[1]["evidence"]
    assert claims[0]["verdict"] == "true"  # accuracy needs no latency

    rows = [r for r in paper_rows() if r["dataset"] == "easy"]  # one dataset: no "hardest"
    claim = check_claims(rows)[3]
    assert claim["verdict"] == "undetermined" and "needs two or more datasets" in claim["evidence"]

    rows = [r for r in paper_rows() if not (r["model"] == "resnet18" and r["regime"] == "scratch")]
    claim = check_claims(rows)[3]
    assert claim["verdict"] == "undetermined"
    assert "No scratch and pretrained fp32 top-1 pair for resnet18" in claim["evidence"]

    assert verdicts([]) == ["undetermined"] * 4

    rows = [r for r in paper_rows() if r["model"] != "resnet18"]  # true of four models, but the paper had five
    for claim in check_claims(rows):
        assert claim["verdict"] == "undetermined"
        assert claim["evidence"].endswith("Holds for the models measured, but the study lacks ResNet-18.")


def test_a_failed_fp32_row_does_not_count_and_a_beaten_claim_stays_false_with_a_model_missing():
    rows = paper_rows()
    for r in rows:
        if r["model"] == "mobilenetv3_small_100" and r["dataset"] == "hard" and r["recipe"] == "fp32":
            r.update(status="eval_failed", top1=None)
        if r["model"] == "resnet18" and r["dataset"] == "easy" and r["regime"] == "imagenet":
            r["top1"] = 0.99
    claims = check_claims(rows)
    assert claims[0]["verdict"] == "false"  # beaten on easy; mobilenet's missing hard figure cannot rescue it
    assert claims[1]["verdict"] == "undetermined"


def test_report_files_from_a_study_db(tmp_path):
    rows = build_tiny_study(tmp_path)
    logged = []
    paths = write_study_report(tmp_path, log=logged.append)
    assert set(paths) == {"html", "md", "csv", "json"}
    assert all(p.is_file() and p.parent == tmp_path for p in paths.values())
    assert len(logged) == 4 and all(line.startswith("wrote ") for line in logged)

    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(rows))
    table = list(csv.DictReader(paths["csv"].open()))
    assert len(table) == len(rows) == 10
    failed = next(r for r in table if r["status"] == "convert_failed")
    assert failed["message"] == "converter: unsupported op" and failed["top1"] == "" and failed["size_bytes"] == ""
    eff_int8 = next(r for r in table if r["model"] == "efficientnetv2_s" and r["recipe"] == "static_wi8_ai8")
    assert eff_int8["host_median_ms_t1"] == "" and eff_int8["host_median_ms_t2"] == "5.0"  # unknown stays empty
    on_phone = next(r for r in table if r["cell"] == "mobilenetv3_small_100.shapes.scratch" and r["recipe"] == "fp32")
    assert on_phone["pixel_7_gpu_mean_ms_t1"] == "4.0" and on_phone["pixel_7_gpu_peak_memory_mb"] == "12.5"

    md = paths["md"].read_text()
    for section in ("## Recommendation", "## Summary", "## Claims", "## Results", "## Plots", "## Appendix",
                    "### Stages", "### Provenance", "### Failed"):
        assert section in md
    assert "| mobilenetv3_small_100 | shapes | scratch | none | static_wi8_ai8 | ok | 78.00 |" in md
    assert "resnet18.shapes.imagenet static_wi8_ai8: eval_failed: eval failed: out of memory" in md
    assert "| tensorflow | 2.21.0 |" in md and "Training budget: epochs 3, image_size 32, batch_size 32" in md
    for claim in check_claims(rows):
        assert f"| {claim['claim']} | **{claim['verdict']}** |" in md

    page = paths["html"].read_text()
    assert page.count('<img class="plot"') >= 6  # latency (2 targets x datasets), size, drop, curves
    assert "http://" not in page and "https://" not in page and "<script" not in page  # readable offline
    assert "Training curves: shapes" in page and "Quantization drop: shapes" in page
    assert 'class="verdict-undetermined"' in page


def test_report_without_a_study_is_one_line_error(tmp_path):
    from tflkit.core.errors import UsageError

    with pytest.raises(UsageError, match="no study.db in"):
        write_study_report(tmp_path, log=lambda *_: None)


def test_plots_that_have_data_are_drawn_and_the_others_named():
    from PIL import Image

    from tflkit.study.plots import make_plots

    plots, notes = make_plots(paper_rows(), {}, budget="epochs 3")
    titles = [p.title for p in plots]
    assert "Pretrained vs scratch (fp32)" in titles
    assert "Top-1 vs latency: host, 1 thread, hard" in titles and "Top-1 vs file size: easy" in titles
    assert notes == ["No quantization drop plot: the study has no figures for it.",
                     "No training curves plot: the study has no figures for it."]
    for p in plots:
        assert "Budget: epochs 3." in p.caption
        image = Image.open(io.BytesIO(p.png)).convert("RGB")
        assert image.width > 300 and len(image.getcolors(maxcolors=1 << 20) or []) > 10, p.title


def test_training_budget_shows_each_per_model_override_with_its_settings():
    from tflkit.study.report import training_budget

    spec = {"training": {"epochs": 2, "lr": "2e-3"},
            "overrides": {"squeezenet1_1": {"lr": "5e-4", "warmup_epochs": 0.5}, "resnet18": {"epochs": 3}}}
    assert training_budget({"spec": spec}) == ("epochs 2, lr 2e-3, per-model overrides: resnet18 epochs 3; "
                                               "squeezenet1_1 lr 5e-4, warmup_epochs 0.5")


# --- uncertainty: the same numbers decide, or not, with the intervals and the convergence -------------------------

def _rows_where(rows, change):
    for row in rows:
        change(row)
    return rows


def test_a_gap_inside_the_interval_is_undetermined_not_true():
    # 200 test images: +/- 4-7 points; the 2-3 point gaps between models are no longer decided
    few = _rows_where(paper_rows(), lambda r: r.update(eval_images=200))
    claims = check_claims(few)
    assert claims[0]["verdict"] == "undetermined"
    assert "differ by less than the 95% interval of their difference" in claims[0]["evidence"]
    assert claims[2]["verdict"] == "true"  # latency and size need no accuracy interval
    assert claims[3]["verdict"] == "undetermined"  # the gains' differences are inside their intervals too


def test_a_model_still_climbing_below_the_subject_keeps_a_claim_open():
    def climbing(row):
        if row["model"] == "resnet18" and row["dataset"] == "easy":
            row.update(convergence="still improving", last_gain=3.5, epochs=8)
    claim = check_claims(_rows_where(paper_rows(), climbing))[0]
    assert claim["verdict"] == "undetermined"
    assert "resnet18 still improving at epoch 8: +3.5 points in its last epoch" in claim["evidence"]


def test_a_beaten_subject_still_climbing_is_undetermined_and_converged_it_is_false():
    beaten = _with(lambda t: t["hard"].update(resnet18=(0.38, 0.65, 3.0, 45e6)))

    def climbing(model):
        def change(row):
            if row["model"] == model and row["dataset"] == "hard":
                row.update(convergence="still improving", last_gain=2.0, epochs=8)
        return change
    # efficientnetv2_s, below resnet18 on hard, could still overtake it
    claim = check_claims(_rows_where(copy.deepcopy(beaten), climbing("efficientnetv2_s")))[0]
    assert claim["verdict"] == "undetermined" and "efficientnetv2_s still improving at epoch 8" in claim["evidence"]
    # resnet18, the one above, still climbing: it only gets further ahead; the claim is false
    assert check_claims(_rows_where(beaten, climbing("resnet18")))[0]["verdict"] == "false"


def test_unrecorded_convergence_or_image_count_decides_nothing():
    claims = check_claims(_rows_where(paper_rows(), lambda r: r.pop("convergence")))
    assert claims[0]["verdict"] == "undetermined" and "convergence was not recorded" in claims[0]["evidence"]
    claims = check_claims(_rows_where(paper_rows(), lambda r: r.pop("eval_images")))
    assert claims[0]["verdict"] == "undetermined" and "no test-image count" in claims[0]["evidence"]


def test_a_study_database_gives_rows_their_interval_and_convergence(tmp_path):
    from tflkit.study.rows import study_rows
    from tflkit.study.spec import Cell
    from tflkit.study.store import open_store

    curves = {"plateau": [0.30, 0.52, 0.60, 0.604], "climbing": [0.30, 0.45, 0.55, 0.62], "stopped": [0.5, 0.5]}
    with open_store(tmp_path) as store:
        for name, curve in curves.items():
            cell = Cell(f"m_{name}.shapes.scratch", f"m_{name}", "shapes", "scratch", {"epochs": len(curve)})
            store.put_cell(cell, tmp_path / cell.id)
            store.finish_stage(cell.id, "train", "ok", result={"history": {"val_top1": curve}, "epochs": len(curve),
                                                               "stopped": name == "stopped"})
            store.put_file(cell.id, "fp32", status="ok", top1=0.62, eval_images=2000)
        rows = {r["model"]: r for r in study_rows(store)}
    assert rows["m_plateau"]["convergence"] == "converged" and rows["m_plateau"]["last_gain"] == pytest.approx(0.4)
    assert rows["m_climbing"]["convergence"] == "still improving" and rows["m_climbing"]["epochs"] == 4
    assert rows["m_stopped"]["convergence"] == "early-stopped"
    lo, hi = rows["m_plateau"]["top1_lo"], rows["m_plateau"]["top1_hi"]
    assert lo == pytest.approx(0.5986, abs=1e-3) and hi == pytest.approx(0.6409, abs=1e-3)  # Wilson, n=2000


def test_the_header_says_how_far_the_budget_is_from_the_papers():
    from tflkit.study.report import _paper_gap

    rows = paper_rows()
    assert "50 epochs" in _paper_gap(rows) and "every one no longer improving" in _paper_gap(rows)
    rows[0].update(convergence="still improving", epochs=8)
    gap = _paper_gap(rows)
    assert "these cells trained 8-50 epochs" in gap and "1 of 20 were still improving" in gap
    assert rows[0]["cell"] in gap and "hold for this budget, not for the architectures" in gap


def test_a_study_with_seeds_trains_a_cell_per_seed_and_reports_their_mean_and_spread(tmp_path):
    import statistics

    from tflkit.study.rows import study_rows
    from tflkit.study.spec import build_cells, load_study
    from tflkit.study.store import open_store

    (tmp_path / "s.yaml").write_text("name: s\nmodels: [test_resnet]\ndatasets: [{spec: shapes}]\nrecipes: [fp32]\n"
                                     "seeds: [0, 1, 2]\ntraining: {epochs: 2}\n")
    cells = build_cells(load_study(tmp_path / "s.yaml"))
    assert [(c.id, c.config["seed"]) for c in cells] == [(f"test_resnet.shapes.scratch.s{s}", s) for s in (0, 1, 2)]
    top1 = {0: 0.70, 1: 0.74, 2: 0.72}
    with open_store(tmp_path) as store:
        for cell in cells:
            store.put_cell(cell, tmp_path / cell.id)
            curve = [0.5, 0.69] if cell.config["seed"] == 1 else [0.5, 0.7, 0.705]
            store.finish_stage(cell.id, "train", "ok", result={"history": {"val_top1": curve}, "epochs": len(curve)})
            store.put_file(cell.id, "fp32", status="ok", top1=top1[cell.config["seed"]], eval_images=2000,
                           size_bytes=1000 + cell.config["seed"])
        rows = study_rows(store)
    assert len(rows) == 1
    row = rows[0]
    assert row["cell"] == "test_resnet.shapes.scratch" and row["seeds"] == 3 and row["top1_seeds"] == [0.70, 0.74, 0.72]
    assert row["top1"] == pytest.approx(0.72) and row["top1_sd"] == pytest.approx(statistics.stdev([0.70, 0.74, 0.72]))
    assert row["size_bytes"] == 1001  # the median of the seeds' files
    assert row["convergence"] == "still improving"  # seed 1 gained 19 points in its last epoch
    # the interval of the mean adds the seeds' spread to the test split's binomial variance: wider than Wilson's
    from tflkit.core.uncertainty import wilson_interval
    lo, hi = wilson_interval(0.72, 2000)
    assert row["top1_hi"] - row["top1_lo"] > hi - lo

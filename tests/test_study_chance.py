"""A model that did not learn (top-1 at chance) is named, not ranked: the rows flag it, the claims treat its accuracy
as not measured, `tflkit pick` excludes it with the reason, the report says so. Hand-built figures, no TensorFlow."""

import json

from test_study_report import paper_rows

from tflkit.study.claims import check_claims
from tflkit.study.pick import pick
from tflkit.study.report import load_rows, write_study_report
from tflkit.study.rows import at_chance
from tflkit.study.spec import Cell
from tflkit.study.store import open_store


def test_at_chance_is_three_standard_errors_above_one_over_classes():
    # CIFAR-10 test split: 1/10 + 3 * sqrt(0.1 * 0.9 / 10000) = 0.109
    assert at_chance(0.1000, 10, 10_000) and at_chance(0.1089, 10, 10_000)
    assert not at_chance(0.1091, 10, 10_000)
    assert at_chance(0.02, 10, 10_000)  # below chance is no better than guessing either
    # Tiny ImageNet val: 1/200 + 3 * sqrt(0.005 * 0.995 / 10000) = 0.00712
    assert at_chance(0.0070, 200, 10_000) and not at_chance(0.0075, 200, 10_000)
    # fewer images, wider band: 200 images of 10 classes allow up to 16.4%
    assert at_chance(0.16, 10, 200) and not at_chance(0.17, 10, 200)
    assert at_chance(0.1, None, 10_000) is None and at_chance(None, 10, 10_000) is None
    assert at_chance(0.1, 10, None) is None


def _tiny_store(out_dir):
    """Three cells: one learned, one at chance (class count from its eval stage), one whose class count is only in
    the trained model's model_info.json (a study run before eval stages recorded it), one with no count at all."""
    figures = {"resnet18.cifar10.scratch": 0.44, "squeezenet1_1.cifar10.scratch": 0.10,
               "shufflenetv2_x1_0.cifar10.scratch": 0.105, "mobilenetv3_small_100.cifar10.scratch": 0.10}
    with open_store(out_dir) as store:
        for cell_id, top1 in figures.items():
            model = cell_id.split(".")[0]
            cell = Cell(cell_id, model, "cifar10", "scratch", {"model": model, "dataset": "cifar10",
                                                               "pretrained": "none"})
            store.put_cell(cell, out_dir / "cells" / cell_id)
            store.put_file(cell_id, "fp32", status="ok", top1=top1, eval_images=10_000, size_bytes=1_000_000)
            store.put_latency(cell_id, "fp32", "host", "xnnpack", 1, status="ok", median_ms=1.0)
            if model in ("resnet18", "squeezenet1_1"):
                store.finish_stage(cell_id, "eval/fp32", "ok", result={"top1": top1, "count": 10_000,
                                                                        "classes": 10})
    info = out_dir / "cells" / "shufflenetv2_x1_0.cifar10.scratch" / "model_info.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"num_classes": 10, "params": 1}))
    return load_rows(out_dir)


def test_rows_flag_files_at_chance_with_the_class_count_from_eval_or_the_trained_model(tmp_path):
    rows = {r["model"]: r for r in _tiny_store(tmp_path)}
    assert rows["resnet18"]["at_chance"] is False and rows["resnet18"]["classes"] == 10
    assert rows["squeezenet1_1"]["at_chance"] is True
    assert rows["squeezenet1_1"]["message"] == "top-1 at chance (10 classes)"
    assert rows["shufflenetv2_x1_0"]["classes"] == 10 and rows["shufflenetv2_x1_0"]["at_chance"] is True
    # no class count anywhere: unknown stays unknown, and nothing is flagged
    assert rows["mobilenetv3_small_100"]["classes"] is None and rows["mobilenetv3_small_100"]["at_chance"] is None
    assert rows["mobilenetv3_small_100"]["message"] == ""


def test_pick_excludes_a_file_at_chance_with_the_reason(tmp_path):
    result = pick(_tiny_store(tmp_path))
    assert [c["model"] for c in result["feasible"]] == ["resnet18", "mobilenetv3_small_100"]
    excluded = {c["model"]: c["reasons"] for c in result["excluded"]}
    assert excluded == {"squeezenet1_1": ["top-1 10.00% is at chance (10 classes)"],
                        "shufflenetv2_x1_0": ["top-1 10.50% is at chance (10 classes)"]}


def test_report_names_the_cells_that_did_not_learn(tmp_path):
    _tiny_store(tmp_path)
    paths = write_study_report(tmp_path, log=lambda *_: None)
    md = paths["md"].read_text()
    assert ("Did not learn (fp32 top-1 at chance: within 3 standard errors of 1/classes; the claims do not use their "
            "accuracy): squeezenet1_1.cifar10.scratch 10.00% with 10 classes, shufflenetv2_x1_0.cifar10.scratch "
            "10.50% with 10 classes.") in md
    assert "| at chance |" in md and "| yes |" in md


def _chance(rows, model, dataset, regime="scratch"):
    """`model`'s fp32 file on `dataset` in `regime` did not learn: 10% on 10 classes."""
    out = []
    for r in rows:
        r = {**r, "classes": 10, "eval_images": 10_000, "at_chance": False}
        if (r["model"], r["dataset"], r["regime"], r["recipe"]) == (model, dataset, regime, "fp32"):
            r.update(top1=0.10, at_chance=True)
        out.append(r)
    return out


def test_an_efficientnet_that_did_not_learn_leaves_the_accuracy_claim_undetermined():
    rows = [r for r in paper_rows() if r["regime"] == "scratch"]  # one regime: its failure is the model's figure
    claim = check_claims(_chance(rows, "efficientnetv2_s", "hard"))[0]
    assert claim["verdict"] == "undetermined"
    assert "hard: efficientnetv2_s (did not learn: 10.00% with 10 classes)." in claim["evidence"]
    # it would have been "false" (beaten by every model) had its 10% counted
    rows_if_counted = [{**r, "at_chance": False} for r in _chance(rows, "efficientnetv2_s", "hard")]
    assert check_claims(rows_if_counted)[0]["verdict"] == "false"


def test_another_model_at_chance_is_missing_for_the_accuracy_claims_not_for_speed_and_size():
    rows = [r for r in paper_rows() if r["regime"] == "scratch"]
    claims = check_claims(_chance(rows, "resnet18", "easy"))
    assert claims[0]["verdict"] == "undetermined"
    assert ("easy: efficientnetv2_s 90.00% is the best measured, but no fp32 top-1 for resnet18 (did not learn: "
            "10.00% with 10 classes).") in claims[0]["evidence"]
    assert claims[1]["verdict"] == "undetermined" and "resnet18 (did not learn" in claims[1]["evidence"]
    assert claims[2]["verdict"] == "true"  # latency and size do not depend on learning


def test_a_model_at_chance_in_one_regime_is_judged_by_the_regime_that_learned():
    claims = check_claims(_chance(paper_rows(), "efficientnetv2_s", "hard", regime="scratch"))
    assert claims[0]["verdict"] == "true"  # its ImageNet cell (60%) learned and leads
    claim = claims[3]
    assert "efficientnetv2_s/hard +50.00 pts (scratch at chance)" in claim["evidence"]


def test_a_pretrained_cell_at_chance_leaves_its_pair_unmeasured():
    claim = check_claims(_chance(paper_rows(), "resnet18", "easy", regime="imagenet"))[3]
    assert claim["verdict"] == "undetermined"
    assert "The pretrained cell did not learn (fp32 top-1 at chance) for resnet18/easy." in claim["evidence"]
    assert "resnet18/easy" not in claim["evidence"].split("Pretraining beats scratch in every pair: ")[1].split(".")[0]

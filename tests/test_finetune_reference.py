"""Issue 15, part 4: a recipe with extra training (QAT, pruning) is compared with the fp32 model fine-tuned the same
way (same fine-tune function, steps, batch size, lr, data order and seed, on a plain twin), scored on the held-out
images the export validates with, so that the report's drop shows quantization's own effect; QAT and pruning share
one reference; records from before it was kept show `-` (unknown), never 0."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
from quant_helpers import make_run, small_shapes

from tflkit.core.run import Run

pytest.importorskip("tensorflow")
needs_tfmot = pytest.mark.skipif(importlib.util.find_spec("tensorflow_model_optimization") is None,
                                 reason="tensorflow-model-optimization is not installed")


def _recording_fine_tunes(monkeypatch):
    """Every call of converters.twin.fine_tune, from the tfmot paths and the float reference alike: what it was
    given and the classes of the first batch it trained on (the data order)."""
    import converters.pruning
    import converters.qat
    import converters.twin

    calls = []
    original = converters.twin.fine_tune

    def recording(model, source, image_size, steps, batch_size=64, lr=1e-4, seed=0, callbacks=(), log=print):
        calls.append({"model": type(model).__name__, "train": source.split("train").labels.tolist(),
                      "image_size": image_size, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed})
        return original(model, source, image_size, steps, batch_size, lr, seed=seed, callbacks=callbacks, log=log)

    for module in (converters.qat, converters.pruning):
        monkeypatch.setattr(module, "fine_tune", recording)
    return calls


@pytest.mark.integration
@needs_tfmot
def test_pruning_is_compared_with_fp32_fine_tuned_alike(tmp_path, monkeypatch):
    from converters.export import export_run
    from converters.recipes import FineTuneSettings
    from tflkit.pipeline.report import write_report

    source = make_run(tmp_path / "run", "test_resnet", source=small_shapes())
    calls = _recording_fine_tunes(monkeypatch)
    lines = []
    (result,) = export_run(tmp_path / "run", ["prune50_static_wi8_ai8"], source=source, calib_samples=32,
                           validate_samples=48, tensor_samples=2, fine_tune=FineTuneSettings(steps=4, batch_size=32),
                           log=lines.append)
    assert result.status == "ok", result.message
    # the pruned twin and the plain float twin had the same fine-tune: same images, steps, batch, lr and seed
    assert len(calls) == 2 and calls[0]["model"] != "Sequential"
    assert {k: v for k, v in calls[0].items() if k != "model"} == {k: v for k, v in calls[1].items() if k != "model"}
    trained = result.fine_tune
    assert (trained["heldout_split"], trained["heldout_images"]) == ("val", 48)
    for key in ("fp32_same_finetune_top1", "fp32_heldout_top1", "heldout_top1"):
        assert 0.0 <= trained[key] <= 1.0 and round(trained[key] * 48) == pytest.approx(trained[key] * 48, abs=0.01)
    assert sum("fp32 fine-tuned alike: 4 steps" in line for line in lines) == 1
    assert Run(tmp_path / "run").exports()[0]["fine_tune"] == trained  # recorded as returned

    rows, markdown = write_report(tmp_path / "run")
    (row,) = rows
    assert row["finetune_fp32_top1"] == trained["fp32_same_finetune_top1"]
    assert row["top1_drop_vs_finetune_fp32"] == pytest.approx(trained["fp32_same_finetune_top1"]
                                                              - trained["heldout_top1"])
    assert "top1 drop vs fp32 fine-tuned alike (pts, held-out)" in markdown
    assert "on the 48 val images the export validates with" in markdown


def test_the_reference_is_reused_from_a_record_with_the_same_fine_tune(monkeypatch):
    """QAT and pruning converted in different runs of `convert`: the second takes the first's reference."""
    from dataclasses import replace

    import converters.export
    from converters.export import HeldOut, _finetune_reference
    from converters.recipes import FineTuneSettings

    trained = []

    class Twin:  # stands for the fine-tuned float twin: predicts class 0, 1, 2, 3 for the four images
        def predict(self, images, **_):
            return np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]

    def fake_float_fine_tuned(model, name, source, image_size, small_input, settings, seed=0, log=print):
        trained.append(settings.steps)
        return Twin()

    monkeypatch.setattr(converters.export, "float_fine_tuned", fake_float_fine_tuned)  # as the export calls it

    source = small_shapes()
    labels = np.array([0, 1, 2, 3])
    held = HeldOut("val", np.zeros((4, 32, 32, 3), np.float32), labels, np.eye(10, dtype=np.float32)[[0, 1, 2, 0]])
    settings = FineTuneSettings(steps=3, batch_size=32).resolved(512)
    earlier = {"steps": 3, "batch_size": 32, "lr": 1e-4, "train_images": 512, "heldout_split": "val",
               "heldout_images": 4, "fp32_heldout_top1": 0.75, "fp32_same_finetune_top1": 0.5,
               "fp32_same_finetune_seconds": 9.0}
    recorded = {"qat_wi8_ai8": {"recipe": "qat_wi8_ai8", "fine_tune": earlier}}
    lines = []
    figures = _finetune_reference({}, recorded, None, None, source, settings, held, lines.append)
    assert figures == {k: earlier[k] for k in ("heldout_split", "heldout_images", "fp32_heldout_top1",
                                                "fp32_same_finetune_top1", "fp32_same_finetune_seconds")}
    assert "from the qat_wi8_ai8 record" in lines[0] and trained == []
    # another fine-tune length is another reference: trained, not taken from that record; then cached
    config = type("Config", (), {"model": "m", "image_size": 32, "small_input": True, "seed": 0})
    cache = {}
    for _ in range(2):
        figures = _finetune_reference(cache, recorded, None, config, source, replace(settings, steps=4), held,
                                      lines.append)
        assert figures["fp32_same_finetune_top1"] == 1.0 and figures["fp32_heldout_top1"] == 0.75
    assert trained == [4]
    # no held-out images: nothing to compare on, said, and nothing invented
    empty = HeldOut("val", np.zeros((0, 32, 32, 3)), np.zeros(0, np.int64), None)
    assert _finetune_reference({}, recorded, None, None, source, settings, empty, lines.append) == {}


def test_report_shows_the_drop_against_fp32_fine_tuned_alike_and_dash_when_unknown(tiny_run, tmp_path):
    from tflkit.pipeline.report import write_report

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("bench", "report.*", "checkpoints"))
    record_path = run / "tflite" / "exports.json"
    record = json.loads(record_path.read_text())
    static = next(r for r in record["results"] if r["recipe"] == "static_wi8_ai8")
    base = {"steps": 20, "batch_size": 64, "lr": 1e-4, "images_seen": 1280, "train_images": 1280, "epochs": 1.0,
            "seconds": 30.0}
    new = {**base, "kind": "qat", "heldout_split": "val", "heldout_images": 128, "fp32_heldout_top1": 0.5,
           "fp32_same_finetune_top1": 0.71875, "fp32_same_finetune_seconds": 20.0, "heldout_top1": 0.6875}
    old = {**base, "kind": "prune50"}  # converted before the reference was kept
    for recipe, trained in (("qat_wi8_ai8", new), ("prune50_static_wi8_ai8", old)):
        path = run / "tflite" / static["path"].rsplit("/", 1)[-1].replace("static_wi8_ai8", recipe)
        shutil.copy(static["path"], path)
        record["results"].append({**static, "recipe": recipe, "path": str(path), "fine_tune": trained})
    record_path.write_text(json.dumps(record))
    # test-split scores as `tflkit eval` records them: QAT above fp32, which its extra training alone can explain
    scores = {"fp32": 0.60, "qat_wi8_ai8": 0.68, "prune50_static_wi8_ai8": 0.55}
    (run / "eval.json").write_text(json.dumps({
        r["path"].rsplit("/", 1)[-1]: {"top1": scores[r["recipe"]], "top5": None}
        for r in record["results"] if r["recipe"] in scores}))

    rows, markdown = write_report(run)
    by = {r["recipe"]: r for r in rows}
    assert by["qat_wi8_ai8"]["finetune_fp32_top1"] == 0.71875
    assert by["qat_wi8_ai8"]["top1_drop_vs_finetune_fp32"] == pytest.approx(0.03125)
    assert by["prune50_static_wi8_ai8"]["finetune_fp32_top1"] is None  # unknown stays unknown
    assert by["prune50_static_wi8_ai8"]["top1_drop_vs_finetune_fp32"] is None
    assert "finetune_fp32_top1" not in by["fp32"]
    assert by["qat_wi8_ai8"]["top1_drop"] == pytest.approx(-0.08)  # against the run's fp32 file: a "gain"

    table = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in table[2:]}
    drop = header.index("top1 drop vs fp32 fine-tuned alike (pts, held-out)")
    reference = header.index("fp32 fine-tuned alike top1 % (held-out)")
    assert header.index("top1 drop (pts)") < reference < drop  # labelled apart, beside the run's own drop
    assert (cells["qat_wi8_ai8"][reference], cells["qat_wi8_ai8"][drop]) == ("71.88", "3.12")
    assert (cells["prune50_static_wi8_ai8"][reference], cells["prune50_static_wi8_ai8"][drop]) == ("-", "-")
    assert (cells["fp32"][reference], cells["fp32"][drop]) == ("", "")  # no extra training: nothing to compare
    assert cells["qat_wi8_ai8"][header.index("top1 drop (pts)")] == "-8.00"
    assert "on the 128 val images the export validates with: this file 68.75%, the fp32 model fine-tuned alike " \
           "71.88%, the run's fp32 model 50.00%" in markdown
    assert "prune50_static_wi8_ai8: -: no fp32 fine-tuned alike in its record" in markdown
    csv_header = (run / "report.csv").read_text().splitlines()[0].split(",")
    assert {"finetune_fp32_top1", "top1_drop_vs_finetune_fp32", "heldout_top1"} <= set(csv_header)


@needs_tfmot
@pytest.mark.slow  # QAT graph, two fine-tunes and two conversions: minutes on the shared 2-core machine
def test_qat_and_pruning_share_one_reference(tmp_path, monkeypatch):
    from converters.export import export_run
    from converters.recipes import FineTuneSettings

    source = make_run(tmp_path / "run", "test_mobilenetv3", source=small_shapes())
    calls = _recording_fine_tunes(monkeypatch)
    lines = []
    qat, pruned = export_run(tmp_path / "run", ["qat_wi8_ai8", "prune50_static_wi8_ai8"], source=source,
                             calib_samples=32, validate_samples=48, tensor_samples=2,
                             fine_tune=FineTuneSettings(steps=4, batch_size=32), log=lines.append)
    assert qat.status == pruned.status == "ok", (qat.message, pruned.message)
    assert len(calls) == 3  # QAT, the float reference (once), pruning
    assert all({k: v for k, v in c.items() if k != "model"} == {k: v for k, v in calls[0].items() if k != "model"}
               for c in calls)
    assert sum("fp32 fine-tuned alike: 4 steps" in line for line in lines) == 1
    shared = ("fp32_same_finetune_top1", "fp32_heldout_top1", "heldout_images", "heldout_split")
    assert [qat.fine_tune[k] for k in shared] == [pruned.fine_tune[k] for k in shared]
    assert (qat.fine_tune["kind"], pruned.fine_tune["kind"]) == ("qat", "prune50")
    assert "heldout_top1" in qat.fine_tune and "heldout_top1" in pruned.fine_tune

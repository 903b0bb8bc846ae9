"""The report's answer first (tflkit.study.recommend) on the hand-built study of test_study_pick: the recommendation
per target, its reason, the "no model learned" panel, the report's order, one colour per model in every plot, and
no path of this machine in the page. Every expected figure is worked out by hand in the comments (no TensorFlow)."""

import io
import re

import pytest
from test_study_pick import build_tiny_study

from tflkit.study.plots import make_plots, model_colors
from tflkit.study.recommend import all_at_chance, boards, recommend
from tflkit.study.report import PathScrubber, write_study_report
from tflkit.study.spec import Cell
from tflkit.study.store import open_store


@pytest.fixture()
def rows(tmp_path):
    return build_tiny_study(tmp_path)


def _answer(rec):
    best = rec["best"]
    return rec["target"], rec["dataset"], best and (best["model"], best["regime"], best["recipe"]), rec["feasible"]


def test_one_recommendation_per_target_and_dataset_measured(rows):
    advice = recommend(rows)
    assert advice["learned"] is True and advice["chance"] is None
    assert [_answer(r) for r in advice["recommendations"]] == [
        # host t1, cifar10: its only file; shapes: six measured at t1 (the int8 efficientnet only at t2, squeezenet's
        # int8 failed to convert, resnet18's int8 failed its eval), efficientnet's fp32 the most accurate (90%)
        ("host (LiteRT, XNNPACK), 1 thread", "cifar10", ("mobilenetv3_small_100", "scratch", "fp32"), 1),
        ("host (LiteRT, XNNPACK), 1 thread", "shapes", ("efficientnetv2_s", "scratch", "fp32"), 6),
        # t2: only efficientnet's int8 was measured there (and nothing of cifar10: no entry for it)
        ("host (LiteRT, XNNPACK), 2 threads", "shapes", ("efficientnetv2_s", "scratch", "static_wi8_ai8"), 1),
        ("pixel 7 (gpu), 1 thread", "shapes", ("mobilenetv3_small_100", "scratch", "fp32"), 1),
    ]
    host = advice["recommendations"][1]
    assert host["next"]["model"] == "resnet18"  # the next model, not efficientnet's own other files
    assert host["why"] == ("Highest top-1 among 6 feasible files; the next model, resnet18 (imagenet, fp32), is 5.00 "
                           "points lower (no interval: the test-image count was not recorded).")
    assert advice["recommendations"][0]["why"] == "The only feasible file."
    assert advice["recommendations"][3]["best"]["latency_statistic"] == "mean"  # the phone printed no median
    # the summary: pick's Pareto front on the host at 1 thread, each dataset apart, best top-1 first
    front = [(c["dataset"], c["model"], c["recipe"]) for c in advice["summary"]["candidates"]]
    assert front == [("cifar10", "mobilenetv3_small_100", "fp32"), ("shapes", "efficientnetv2_s", "fp32"),
                     ("shapes", "resnet18", "fp32"), ("shapes", "mobilenetv3_small_100", "fp32"),
                     ("shapes", "squeezenet1_1", "fp16"), ("shapes", "squeezenet1_1", "fp32")]


def _with(rows, **figures):
    return [{**r, **figures} for r in rows]


def test_the_reason_says_whether_the_next_model_is_outside_the_interval(rows):
    # 0.90 vs 0.85 on 10,000 images: var = (0.09 + 0.1275) / 10^4, half-width 1.96 * 0.00466 = 0.91 points
    many = _with(rows, eval_images=10_000, convergence="converged")
    why = recommend(many)["recommendations"][1]["why"]
    assert why == ("Highest top-1 among 6 feasible files; the next model, resnet18 (imagenet, fp32), is 5.00 points "
                   "lower, outside the 95% interval of the difference (+4.09 to +5.91 points).")
    # the next model still climbing could overtake: said so
    climbing = _with(rows, eval_images=10_000, convergence="still improving")
    assert recommend(climbing)["recommendations"][1]["why"].endswith(
        "(+4.09 to +5.91 points), but it was still improving at its last epoch, so longer training could close the "
        "gap.")
    # on 100 images the half-width is 9.14 points: the two are not told apart
    few = _with(rows, eval_images=100, convergence="converged")
    assert recommend(few)["recommendations"][1]["why"].endswith(
        "inside the 95% interval of the difference (-4.14 to +14.14 points): the two are not told apart on this test "
        "split.")


def test_a_cheaper_file_of_the_same_model_inside_the_interval_is_named(rows):
    # efficientnet's int8 (0.89) measured at t1 too, 4 ms and 21 MB against its fp32's 8 ms and 80 MB; on 1,000
    # images their difference, 1 point, has a half-width of 1.96 * sqrt((0.09 + 0.0979) / 1000) = 2.69 points
    for row in rows:
        if row["model"] == "efficientnetv2_s" and row["recipe"] == "static_wi8_ai8":
            row["host_median_ms_t1"] = 4.0
    rec = recommend(_with(rows, eval_images=1000, convergence="converged"))["recommendations"][1]
    assert rec["best"]["recipe"] == "fp32" and rec["feasible"] == 7
    assert rec["why"] == ("Highest top-1 among 7 feasible files; the next model, resnet18 (imagenet, fp32), is 5.00 "
                          "points lower, outside the 95% interval of the difference (+2.11 to +7.89 points); "
                          "efficientnetv2_s's static_wi8_ai8 file is not told apart (-1.00 points, inside the "
                          "interval) at 4.000 ms and 21.000 MB.")


def test_a_board_recommends_the_most_accurate_file_that_fits_it(rows):
    # fits_<board> as a study with `mcu:` records them: squeezenet's fp16 and mobilenet's int8 fit the board, the
    # others are too big or were not checked (not checked never passes)
    for row in rows:
        if (row["model"], row["recipe"]) in (("squeezenet1_1", "fp16"), ("mobilenetv3_small_100", "static_wi8_ai8")):
            row.update(fits_nano33=True, tflm_arena_bytes=100 * 1024, fits_on="nano33")
        elif row["model"] == "resnet18":
            row.update(fits_nano33=False, fits_nano33_breaks="flash 44,000 KB > 1,024 KB", fits_nano33_npu=False)
    assert boards(rows) == ["nano33"]  # fits_on, _breaks and _npu are no boards of their own
    board = [r for r in recommend(rows)["recommendations"] if r["kind"] == "board"]
    assert [_answer(r) for r in board] == [
        ("nano33 (TFLite Micro or its Ethos-U)", "shapes", ("mobilenetv3_small_100", "scratch", "static_wi8_ai8"), 2)]
    assert board[0]["latency_from"] == "host (LiteRT, XNNPACK), 1 thread"
    assert board[0]["best"]["tflm_arena_kb"] == 100.0
    # cifar10's only file was not checked against the board: no entry for cifar10 (above); nothing that fits
    for row in rows:
        if row["recipe"] == "static_wi8_ai8" or row["model"] == "squeezenet1_1":
            row.update(fits_nano33=False, fits_nano33_breaks="arena 300 KB > 256 KB")
    (none,) = [r for r in recommend(rows)["recommendations"] if r["kind"] == "board"]
    assert none["best"] is None and none["why"].startswith("No feasible file: 9 excluded (e.g. mobilenetv3_small_100 "
                                                           "(scratch, fp32): fit on nano33 not measured)")


def test_on_a_board_memory_decides_between_files_not_told_apart(rows):
    """A board's recommendation (and `tflkit pick --board`) takes the file of the same model with the smaller TFLite
    Micro arena when its top-1 is inside the interval of the most accurate one's: the int8 file over the fp32."""
    from tflkit.study.pick import pick

    mine = ("mobilenetv3_small_100", "shapes")
    fp32 = next(r for r in rows if (r["model"], r["dataset"], r["recipe"]) == (*mine, "fp32"))
    int8 = {**fp32, "recipe": "static_wi8_ai8", "top1": fp32["top1"] - 0.003, "size_bytes": fp32["size_bytes"] // 4,
            "host_median_ms_t1": fp32["host_median_ms_t1"] * 2}  # slower on this host: latency does not decide here
    board = {"fits_nano33": True, "fits_on": "nano33"}
    study = [{**r, "eval_images": 10_000} for r in rows if (r["model"], r["dataset"]) != mine]
    study += [{**fp32, **board, "tflm_arena_bytes": 400 * 1024, "eval_images": 10_000},
              {**int8, **board, "tflm_arena_bytes": 100 * 1024, "eval_images": 10_000}]
    picked = pick(study, dataset="shapes", boards=["nano33"])["feasible"]
    assert (picked[0]["recipe"], picked[0].get("chosen_over")) == ("static_wi8_ai8", "fp32")
    (rec,) = [r for r in recommend(study)["recommendations"] if r["kind"] == "board"]
    assert rec["best"]["recipe"] == "static_wi8_ai8" and rec["why"].startswith(
        "Chosen over mobilenetv3_small_100's fp32 file, whose top-1 is not told apart from it")
    assert "100.0 KB arena" in rec["why"]
    # outside the interval (2 points on 10,000 images), the most accurate file stays first, whatever its memory
    study[-1] = {**study[-1], "top1": fp32["top1"] - 0.02}
    assert pick(study, dataset="shapes", boards=["nano33"])["feasible"][0]["recipe"] == "fp32"


def _chance_study(out_dir):
    """Two cells that did not learn: 10% and 10.4% on 10,000 images of 10 classes (chance up to 10.9%)."""
    with open_store(out_dir) as store:
        store.set_meta("name", "noise")
        for model, top1 in (("resnet18", 0.100), ("squeezenet1_1", 0.104)):
            cell_id = f"{model}.cifar10.scratch"
            store.put_cell(Cell(cell_id, model, "cifar10", "scratch", {"model": model, "pretrained": "none"}),
                           out_dir / "cells" / cell_id)
            store.finish_stage(cell_id, "train", "ok", result={"history": {"val_top1": [0.1, 0.1, 0.1]}})
            for recipe in ("fp32", "static_wi8_ai8"):
                store.put_file(cell_id, recipe, status="ok", top1=top1, eval_images=10_000, size_bytes=1_000_000)
                store.put_latency(cell_id, recipe, "host", "xnnpack", 1, status="ok", median_ms=1.0)
                store.finish_stage(cell_id, f"eval/{recipe}", "ok", result={"top1": top1, "classes": 10})


def test_an_all_at_chance_study_shows_no_model_learned_instead_of_an_answer_or_a_front(tmp_path):
    _chance_study(tmp_path)
    paths = write_study_report(tmp_path, log=lambda *_: None)
    from tflkit.study.report import load_rows

    rows = load_rows(tmp_path)
    assert all_at_chance(rows) and not all_at_chance(_with(rows, at_chance=False))
    advice = recommend(rows)
    assert advice["learned"] is False and advice["recommendations"] == []
    assert advice["chance"].startswith("No model learned: every one of the 4 files measured has a top-1 at chance")
    assert "the best is squeezenet1_1 (scratch, fp32) at 10.40% (chance: 10.00% with 10 classes)" in advice["chance"]
    md = paths["md"].read_text()
    assert md.startswith("# Study noise\n\n## No model learned\n\nNo model learned: every one")
    assert "## Recommendation" not in md and "## Summary" not in md
    assert "Top-1 vs latency" not in md and "Pareto" not in md.split("## Plots")[1].split("## Appendix")[0]
    assert "every file's top-1 is at chance, so its accuracy is noise" in md
    page = paths["html"].read_text()
    assert re.search(r'<h1>Study noise</h1>\s*<section id="no-model-learned"', page)
    assert 'id="recommendation"' not in page and "Training curves: cifar10" in page


def test_the_report_opens_with_the_answer_then_the_summary_and_keeps_detail_collapsed(tmp_path):
    build_tiny_study(tmp_path)
    paths = write_study_report(tmp_path, log=lambda *_: None)
    md = paths["md"].read_text()
    assert md.startswith("# Study tiny\n\n## Recommendation\n\n- **host (LiteRT, XNNPACK), 1 thread, cifar10**: "
                         "**mobilenetv3_small_100 (scratch, fp32)**: top-1 50.00%")
    answer = md.split("## Recommendation")[1].split("## Summary")[0]
    assert ("- **host (LiteRT, XNNPACK), 1 thread, shapes**: **efficientnetv2_s (scratch, fp32)**: top-1 90.00%, "
            "8.000 ms median per inference, 80.000 MB. Highest top-1 among 6 feasible files") in answer
    order = [md.index(h) for h in ("## Recommendation", "## Summary", "## Study", "## Claims", "## Results",
                                   "## Plots", "## Appendix", "### Stages", "### Provenance")]
    assert order == sorted(order)
    assert "| dataset | model | regime | recipe | top-1 % (95% interval) | latency ms | size MB | arena KB |" in md
    assert "| shapes | squeezenet1_1 | scratch | fp16 | 76.00 | 0.600 | 0.500 |  |" in md
    page = paths["html"].read_text()
    assert re.search(r'<h1>Study tiny</h1>\s*<section id="recommendation"', page)
    results = page.split('<h2 id="results">')[1]
    assert results.lstrip().startswith("Results</h2>\n<details><summary>Full table: 10 rows")
    appendix = page.split('<h2 id="appendix">')[1]
    assert appendix.index("<details>") < appendix.index('id="stages"') < appendix.index('id="provenance"')
    text = re.sub(r"<[^>]+>", "", page.split("</style>")[1])
    assert "`" not in text  # the notes' `code` spans are <code> in the HTML


def test_a_model_has_one_colour_in_every_plot_and_its_key():
    from PIL import Image
    from test_study_report import paper_rows

    rows = paper_rows()
    colors = model_colors(rows)
    assert list(colors) == sorted(colors) and len(set(colors.values())) == len(colors) == 5
    assert model_colors(list(reversed(rows))) == colors  # from the sorted names, not the row order
    history = {"val_top1": [0.3, 0.5], "top1": [0.4, 0.6]}
    histories = {r["cell"]: history for r in rows if r["recipe"] == "fp32"}
    plots, _ = make_plots(rows, histories, colors=colors)
    assert len(plots) >= 5
    for plot in plots:
        assert plot.colors and all(colors[m] == c for m, c in plot.colors.items()), plot.title
        pixels = {p for _, p in Image.open(io.BytesIO(plot.png)).convert("RGB").getcolors(maxcolors=1 << 20)}
        for model, color in plot.colors.items():  # the legend's filled square is drawn in exactly that colour
            rgb = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
            assert rgb in pixels, (plot.title, model, color)


def test_paths_under_the_study_become_relative_and_others_their_file_name(tmp_path):
    study = tmp_path / "study"
    scrub = PathScrubber.of([study], study)
    assert scrub(f"read {study}/cells/a/m.tflite") == "read cells/a/m.tflite"
    assert scrub(f'{{"data_dir": "/home/someone/.cache/tflkit-data", "out": "{study}"}}') == \
        '{"data_dir": "tflkit-data", "out": "."}'
    assert scrub("top1/top5/drop in %, 1/classes, cells/a.tflite") == "top1/top5/drop in %, 1/classes, cells/a.tflite"
    joined = PathScrubber.of([study], tmp_path / "both")
    assert joined(f"{study}/cells/a.tflite") == "../study/cells/a.tflite"

    build_tiny_study(study)
    with open_store(study) as store:  # figures a real run records: data and weights elsewhere, files inside
        store.set_meta("data", {"data_dir": "/root/.cache/tflkit-data", "weights": "/tmp/w/imagenet.h5",
                                "artifact": str(study / "cells" / "x" / "m.tflite")})
    paths = write_study_report(study, log=lambda *_: None)
    for kind in ("md", "html"):
        text = paths[kind].read_text()
        for root in ("/root/", "/tmp/", "/home/", str(tmp_path)):
            assert root not in text, (kind, root)
        assert '&quot;artifact&quot;: &quot;cells/x/m.tflite&quot;' in text or '"artifact": "cells/x/m.tflite"' in text


def test_a_study_with_mcu_recommends_per_board_above_its_fits_on_table(tmp_path):
    build_tiny_study(tmp_path)
    with open_store(tmp_path) as store:  # the mcu stage's record as tflkit.mcu.measure writes it
        for cell, recipe, arena, fits in (("squeezenet1_1.shapes.scratch", "fp16", 90 * 1024, True),
                                          ("mobilenetv3_small_100.shapes.scratch", "fp32", 300 * 1024, False)):
            store.finish_stage(cell, f"mcu/{recipe}", "ok", result={
                "runs": True, "arena_bytes": arena, "vela": [],
                "fits": [{"board": "nano33", "engine": "tflm", "fits": fits,
                          "breaks": "" if fits else "arena 300.0 KB > 256.0 KB"}]})
    paths = write_study_report(tmp_path, log=lambda *_: None)
    md = paths["md"].read_text()
    answer = md.split("## Recommendation")[1].split("## Summary")[0]
    assert ("- **nano33 (TFLite Micro or its Ethos-U), shapes**: **squeezenet1_1 (scratch, fp16)**: top-1 76.00%, "
            "TFLM arena 90.0 KB, file 488.3 KB, fits on nano33, 0.600 ms median on host (LiteRT, XNNPACK), 1 thread. "
            "The only feasible file.") in answer
    assert md.index("## Recommendation") < md.index("## Microcontrollers: fits on")
    assert 'id="mcu"' in paths["html"].read_text()

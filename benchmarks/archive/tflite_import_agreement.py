"""Does the weight import from a .tflite give the .tflite's model? Top-1 agreement on real images.

The TF-slim 8-bit MobileNetV3-Small (../shared/data/weights/mobilenet_v3_small) is imported onto
`mobilenetv3_small_100_tf` (`tflkit weights import`), and both are run on the first N Tiny ImageNet val images
(annotation order), upscaled 64 -> 224 bilinearly. Tiny ImageNet's wnids are ImageNet synsets: each is mapped to
the .tflite's 1001-class index through its words.txt name and labels_1001.txt ('crane' names two ImageNet classes
and is left out of the top-1 figures).

The file is run twice, with XNNPACK (LiteRT's default: "the .tflite") and with the built-in reference kernels, and
both its uint8 softmax output and its uint8 pre-softmax logits tensor are kept. A uint8 output can tie at its
maximum, so agreement is given literally (argmax against argmax, numpy's lowest index among ties) and tie-aware
(the candidate's top-1 is one of the anchor's tied top classes; the two tie sets overlap), for Keras against the
file and for the file against itself across kernel sets (the noise floor of the 8-bit arithmetic); the ties and the
first-second margins in quantization steps; the ImageNet top-1 of each, the file's counted tie-aware (lower: the
true class is the sole maximum; expected: 1/k of k tied classes; upper: among them) with paired 95% intervals on
the gaps; the distance between logits; where along the depth the two kernel sets part. And whether the Keras model
computes what the file computes: op by op (each op of the file fed its own dequantized input, its Keras
counterpart against its output, in steps of that tensor) and block by block, plus two diagnostic twins of the Keras
model that clip (and round) to the file's activation ranges.

    nice -n 5 .venv/bin/python -m benchmarks.archive.tflite_import_agreement --data-dir ~/.cache/tflkit-data

Archived (issue 22): whether the weight import from a .tflite gives the file's model was answered for issue 13 (no
import bug: the gap is the file's 8-bit arithmetic; benchmarks/results/tflite_import_agreement.md, cited by
docs/training.md). Kept as the record of how that result was made, and runnable: from the repository root, `python
-m benchmarks.archive.tflite_import_agreement` (benchmarks.harness puts the checkout on the path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import ROOT

WEIGHTS = ROOT.parent / "shared" / "data" / "weights" / "mobilenet_v3_small"
MODEL = "mobilenetv3_small_100_tf"
LOGITS_TENSOR = "MobilenetV3/Logits/SpatialSqueeze"  # the pre-softmax logits, uint8

# (the .tflite's tensor, the Keras layer whose output it is) at each block boundary
_RESIDUAL = (2, 4, 5, 7, 9, 10)  # the blocks with a shortcut: their output is the Add
BLOCKS = [("MobilenetV3/Conv/hard_swish/mul_1", "conv_hard_swish")] + [
    (f"MobilenetV3/expanded_conv{'_' + str(i) if i else ''}/{'add' if i in _RESIDUAL else 'project/add_fold'}",
     f"expanded_conv_{str(i) + '_' if i else ''}{'add' if i in _RESIDUAL else 'project_bn'}")
    for i in range(11)] + [("MobilenetV3/Conv_1/hard_swish/mul_1", "conv_1_hard_swish"),
                           ("MobilenetV3/Logits/SpatialSqueeze", "logits")]


def imagenet_index(data_dir: Path, labels_path: Path) -> dict:
    """Tiny ImageNet wnid -> index in the 1001-class labels file, by the words.txt name (unique names only)."""
    by_name = {}
    for line in labels_path.read_text().splitlines():
        index, _, name = line.partition(":")
        by_name.setdefault(name.strip(), []).append(int(index))
    words = dict(line.split("\t", 1) for line in (data_dir / "words.txt").read_text().splitlines() if "\t" in line)
    wnids = (data_dir / "wnids.txt").read_text().split()
    return {w: by_name[words[w]][0] for w in wnids if len(by_name.get(words.get(w, ""), [])) == 1}


def load_images(data_dir: Path, n: int, size: int):
    from PIL import Image

    rows = [line.split("\t")[:2] for line in (data_dir / "val" / "val_annotations.txt").read_text().splitlines()][:n]
    images = np.stack([np.asarray(Image.open(data_dir / "val" / "images" / f).convert("RGB")
                                  .resize((size, size), Image.BILINEAR)) for f, _ in rows])
    return images, [w for _, w in rows]


def tflite_outputs(path, images, xnnpack=True) -> dict:
    """The .tflite's raw uint8 outputs on `images`: the softmax output and the pre-softmax logits tensor
    (`MobilenetV3/Logits/SpatialSqueeze`), with their (scale, zero_point). Under XNNPACK the logits tensor is the
    output of the last delegated partition (the uint8 SOFTMAX runs on the built-in kernel), so it is read as it
    was written; on the reference kernels every tensor is kept (experimental_preserve_all_tensors)."""
    from tflkit.tflite.runtime import load_interpreter

    interpreter = load_interpreter(path, threads=1, xnnpack=xnnpack, preserve_all_tensors=not xnnpack)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    logits = next(d for d in interpreter.get_tensor_details() if d["name"] == LOGITS_TENSOR)
    probs_q, logits_q = [], []
    start = time.time()
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interpreter.invoke()
        probs_q.append(interpreter.get_tensor(out["index"])[0].copy())
        logits_q.append(interpreter.get_tensor(logits["index"]).reshape(-1).copy())
    return {"probs": np.stack(probs_q), "logits": np.stack(logits_q), "probs_quant": out["quantization"],
            "logits_quant": logits["quantization"], "invoke_s": time.time() - start}


def top_sets(q: np.ndarray) -> np.ndarray:
    """Boolean [N, classes]: the classes tied at each row's maximum (a uint8 output has exact ties)."""
    return q == q.max(axis=1, keepdims=True)


def margin_steps(q: np.ndarray) -> np.ndarray:
    """First minus second largest value of each row, in quantization steps (0 where the maximum is tied)."""
    top2 = np.sort(q.astype(np.int32), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def wilson(hits: int, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson interval of a proportion, in percent."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = hits / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    return [round(100 * float(centre - half), 1), round(100 * float(centre + half), 1)]


def paired_gap(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean of a - b per image (scores in [0, 1]) in points, with a 95% normal interval of the paired difference."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mean, half = float(d.mean()), 1.96 * float(d.std(ddof=1)) / np.sqrt(len(d))
    return {"points": round(100 * mean, 2), "ci95": [round(100 * (mean - half), 2), round(100 * (mean + half), 2)]}


def agreement_measures(candidate_top1: np.ndarray, candidate_sets: np.ndarray, anchor: np.ndarray) -> dict:
    """The candidate's top-1 against the anchor's uint8 output, literal and tie-aware.

    literal: both argmax (numpy's: the lowest index among tied classes); no_tie: the same on the images whose anchor
    maximum is not tied; in_tied_set: the candidate's top-1 is one of the anchor's tied top classes; sets_overlap:
    the candidate's tied top classes (a single class for a float output) and the anchor's share one."""
    anchor_sets = top_sets(anchor)
    unique = anchor_sets.sum(1) == 1
    rows = np.arange(len(anchor))
    literal = candidate_top1 == anchor.argmax(1)
    in_set = anchor_sets[rows, candidate_top1]
    overlap = np.any(anchor_sets & candidate_sets, axis=1)
    n = len(anchor)
    result = {}
    for key, hits, count in (("literal", literal, n), ("no_tie", literal[unique], int(unique.sum())),
                             ("in_tied_set", in_set, n), ("sets_overlap", overlap, n)):
        result[key] = {"pct": round(100.0 * float(np.mean(hits)), 2) if count else float("nan"),
                       "ci95": wilson(int(np.sum(hits)), count), "images": count}
    return result


def tie_profile(q: np.ndarray) -> dict:
    """How often the uint8 maximum is tied, how many classes tie, and the first-second margin in steps."""
    k = top_sets(q).sum(1)
    m = margin_steps(q)
    buckets = {"0 (tie)": m == 0, "1": m == 1, "2": m == 2, "3": m == 3, "4-7": (m >= 4) & (m <= 7),
               "8-15": (m >= 8) & (m <= 15), ">=16": m >= 16}
    return {"tied_at_top_pct": round(100.0 * float(np.mean(k > 1)), 2),
            "tied_classes": {str(c): int(np.sum(k == c)) for c in (2, 3)} | {">=4": int(np.sum(k >= 4))},
            "margin_steps_pct": {b: round(100.0 * float(np.mean(v)), 1) for b, v in buckets.items()},
            "margin_steps_median": float(np.median(m)), "saturated_at_255_pct": round(
                100.0 * float(np.mean(q.max(1) == 255)), 2)}


def tie_aware_top1(q: np.ndarray, truth: np.ndarray) -> dict:
    """Top-1 of a uint8 output against `truth`, per image: literal (argmax), lower (right only when the true class is
    the sole maximum), expected (1/k when it is one of k tied classes) and upper (one of the tied classes)."""
    sets = top_sets(q)
    rows = np.arange(len(q))
    in_set = sets[rows, truth]
    k = sets.sum(1)
    return {"literal": (q.argmax(1) == truth).astype(float), "lower": (in_set & (k == 1)).astype(float),
            "expected": in_set / k, "upper": in_set.astype(float)}


def activation_ranges(path, model) -> dict:
    """Keras layer name -> (lo, hi, step) of the .tflite's uint8 tensor at that layer's output, by TF-slim's tensor
    names (`expanded_conv_3/project/add_fold` is the output of `expanded_conv_3_project_bn`, ...)."""
    from tflkit.tflite.runtime import load_interpreter

    names = {layer.name for layer in model.layers}
    kinds = (("/add_fold", "bn"), ("/Relu", "bn"), ("/hard_swish/mul_1", "hard_swish"), ("/add", "add"),
             ("/squeeze_excite/mul", "squeeze_excite_mul"))
    ranges = {}
    for detail in load_interpreter(path, xnnpack=False).get_tensor_details():
        scale, zero_point = detail["quantization"]
        name = detail["name"]
        if not scale or detail["dtype"] != np.uint8 or not name.startswith("MobilenetV3/"):
            continue
        for suffix, kind in kinds:
            if name.endswith(suffix):
                base = name[len("MobilenetV3/"):-len(suffix)].replace("/", "_").lower()
                hit = next((c for c in (f"{base}_{kind}", base) if c in names), None)
                if hit:
                    ranges[hit] = (-zero_point * scale, (255 - zero_point) * scale, scale)
                break
    return ranges


def emulated_8bit(model, ranges: dict, rounding: bool):
    """A diagnostic twin of `model` sharing its weights: each activation the .tflite holds in uint8 is clipped to
    that tensor's range (and, with `rounding`, rounded to its step), as the 8-bit file computes it."""
    import keras
    from keras import ops

    class FakeQuant(keras.layers.Layer):
        def __init__(self, inner, lo, hi, step):
            super().__init__(name=f"{inner.name}_fq")
            self.inner, self.lo, self.hi, self.step = inner, lo, hi, step

        def call(self, *args, **kwargs):
            y = ops.clip(self.inner(*args, **kwargs), self.lo, self.hi)
            return self.lo + ops.round((y - self.lo) / self.step) * self.step if rounding else y

    return keras.models.clone_model(
        model, clone_function=lambda layer: FakeQuant(layer, *ranges[layer.name]) if layer.name in ranges else layer)


def kernel_divergence(path, images) -> list[dict]:
    """XNNPACK against the reference kernels, tensor by tensor along the depth, on `images`: at each block output the
    XNNPACK run writes (a partition's output or a non-delegated op's; the rest stay inside the delegate), the mean
    absolute difference in steps of that tensor and the share of values that differ."""
    from tflkit.tflite.runtime import load_interpreter

    runs = {"x": load_interpreter(path, xnnpack=True, preserve_all_tensors=True), "plain": load_interpreter(path),
            "r": load_interpreter(path, xnnpack=False, preserve_all_tensors=True)}
    ops = runs["x"]._get_ops_details()
    written = {int(o) for op in ops for o in op["outputs"]}  # DELEGATE nodes and the ops left to the built-in kernels
    by_name = {d["name"]: d["index"] for d in runs["x"].get_tensor_details()}
    names = [src for src, _ in BLOCKS if by_name.get(src) in written]  # BLOCKS ends at the logits
    diffs, same_output = {n: [] for n in names}, True
    for image in images:
        for interpreter in runs.values():
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
            interpreter.invoke()
        out = runs["x"].get_output_details()[0]["index"]
        same_output &= bool(np.array_equal(runs["x"].get_tensor(out), runs["plain"].get_tensor(out)))
        for n in names:
            a, b = (runs[k].get_tensor(by_name[n]).astype(np.int32) for k in ("x", "r"))
            diffs[n].append((np.abs(a - b).mean(), (a != b).mean()))
    if not same_output:  # preserving tensors must not change what XNNPACK computes
        raise RuntimeError("XNNPACK with experimental_preserve_all_tensors gave another output than without")
    return [{"tensor": n, "mean_diff_steps": round(float(np.mean([d[0] for d in diffs[n]])), 3),
             "values_differing_pct": round(100.0 * float(np.mean([d[1] for d in diffs[n]])), 1)} for n in names]


def logit_distance(a: np.ndarray, b: np.ndarray, step: float) -> dict:
    """Mean |a - b| in steps of the logits tensor, and the mean per-image correlation, of two [N, classes] logits."""
    corr = [np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)]
    return {"mean_diff_steps": round(float(np.abs(a - b).mean() / step), 2),
            "mean_corr": round(float(np.mean(corr)), 4)}


def layer_local(path, model, image) -> list[dict]:
    import keras

    from tflkit.tflite.runtime import load_interpreter

    interpreter = load_interpreter(path, xnnpack=False, preserve_all_tensors=True)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
    interpreter.invoke()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}

    def tensor(name):
        scale, zero_point = details[name]["quantization"]
        return (interpreter.get_tensor(details[name]["index"]).astype(np.float32) - zero_point) * scale, scale

    rows = []
    for (src_in, layer_in), (src_out, layer_out) in zip(BLOCKS, BLOCKS[1:]):
        sub = keras.Model(model.get_layer(layer_in).output, model.get_layer(layer_out).output)
        x, _ = tensor(src_in)
        y = np.asarray(sub.predict_on_batch(x.reshape((1, *sub.input.shape[1:]))))
        ref, step = tensor(src_out)
        diff = np.abs(ref.reshape(y.shape) - y)
        rows.append({"block_out": layer_out, "max_diff_steps": round(float(diff.max() / step), 2),
                     "mean_diff_steps": round(float(diff.mean() / step), 3),
                     "corr": round(float(np.corrcoef(ref.ravel(), y.ravel())[0, 1]), 4)})
    return rows


# TF-slim tensor name (after `MobilenetV3/<block>/`) -> the Keras layer (after `<block>_`) whose output it is
_TENSOR_TO_LAYER = {
    "expand/add_fold": "expand_bn", "depthwise/add_fold": "depthwise_bn", "project/add_fold": "project_bn",
    "expand/Relu": "expand_relu", "depthwise/Relu": "depthwise_relu", "expand/hard_swish/mul_1": "expand_hard_swish",
    "depthwise/hard_swish/mul_1": "depthwise_hard_swish", "squeeze_excite/AvgPool": "squeeze_excite_avg_pool",
    "squeeze_excite/Conv/Relu": "squeeze_excite_relu", "squeeze_excite/Conv_1/BiasAdd": "squeeze_excite_conv_1",
    "squeeze_excite/Conv_1/mul": "squeeze_excite_hard_sigmoid", "squeeze_excite/mul": "squeeze_excite_mul",
    "add": "add", "add_fold": "bn", "hard_swish/mul_1": "hard_swish",
}
_HEAD_TENSORS = {"input": "normalize", "MobilenetV3/Conv_2/BiasAdd": "conv_2", "MobilenetV3/AvgPool2D/AvgPool": "pool",
                 "MobilenetV3/Logits/AvgPool": "dropout", "MobilenetV3/Logits/Conv2d_1c_1x1/BiasAdd": "logits"}


def keras_layer_for(tensor: str, names: set) -> str | None:
    """The Keras layer whose output the .tflite tensor `tensor` holds, or None (RESHAPE, SOFTMAX, the hard sigmoid's
    inner ADD, constants)."""
    from tflkit.models.layers import NORMALIZE_LAYER

    if tensor in _HEAD_TENSORS:
        name = NORMALIZE_LAYER if tensor == "input" else _HEAD_TENSORS[tensor]
    else:
        block, _, rest = tensor.removeprefix("MobilenetV3/").partition("/")
        name = f"{block.lower()}_{_TENSOR_TO_LAYER[rest]}" if rest in _TENSOR_TO_LAYER else None
    return name if name in names else None


def op_local(path, model, images) -> list[dict]:
    """Every op of the .tflite against its Keras counterpart, each fed the .tflite's own dequantized input(s), on
    `images`, in steps of the op's output tensor (the Keras output clipped to that tensor's range, as the op clips).

    Ops without a Keras layer of their own are taken with the next one (the hard sigmoid is the file's ADD+RELU6
    then MUL; RESHAPE and SOFTMAX have none). A weight op computes an exact integer sum of the same dequantized
    weights and input plus the same bias and rounds once: imported right, it is within half a step (plus the
    fixed-point multiplier's error). A wrong weight, bias, layout or activation shows as many steps."""
    import keras

    from tflkit.tflite.runtime import load_interpreter

    interpreter = load_interpreter(path, xnnpack=False, preserve_all_tensors=True)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    produced_by = {int(o): op for op in ops for o in op["outputs"]}
    names = {layer.name for layer in model.layers}
    mapped = {i: layer for i, d in details.items() if (layer := keras_layer_for(d["name"], names))}

    segments = []
    for op in ops:
        out = int(op["outputs"][0])
        if out not in mapped or op["op_name"] == "RESHAPE":
            continue
        frontier, kinds, todo = [], [op["op_name"]], [op]
        while todo:  # walk back through unmapped tensors to mapped ones; constants have no producer
            for i in (int(i) for i in todo.pop()["inputs"] if int(i) >= 0):
                if i in mapped and i not in frontier:
                    frontier.append(i)
                elif i not in mapped and i in produced_by:
                    todo.append(produced_by[i])
                    kinds.insert(0, produced_by[i]["op_name"])
        segments.append((frontier, out, "+".join(kinds)))

    wanted = {i for frontier, out, _ in segments for i in (*frontier, out)}  # includes the input's
    captured = {index: [] for index in wanted}
    for image in images:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        for index in wanted:
            scale, zero_point = details[index]["quantization"]
            captured[index].append((interpreter.get_tensor(index)[0].astype(np.float32) - zero_point) * scale)

    norm = next(i for i, layer in mapped.items() if details[i]["name"] == "input")
    sub = keras.Model(model.inputs, model.get_layer(mapped[norm]).output)  # the input's dequantization
    y = np.asarray(sub.predict_on_batch(images.astype(np.float32)))
    diff = np.abs(np.stack(captured[norm]) - y) / details[norm]["quantization"][0]
    rows = [{"keras_layer": mapped[norm], "tflite_ops": "input (uint8 pixels, dequantized)",
             "max_diff_steps": round(float(diff.max()), 3), "mean_diff_steps": round(float(diff.mean()), 3),
             "within_half_step_pct": _pct(diff <= 0.5 + 1e-3), "within_one_step_pct": _pct(diff <= 1 + 1e-3),
             "clipped_pct": 0.0}]
    for frontier, out, kinds in segments:
        sub = keras.Model([model.get_layer(mapped[i]).output for i in frontier], model.get_layer(mapped[out]).output)
        xs = [np.stack(captured[i]).reshape((len(images), *t.shape[1:])) for i, t in zip(frontier, sub.inputs)]
        y = np.asarray(sub.predict_on_batch(xs))
        scale, zero_point = details[out]["quantization"]
        lo, hi = -zero_point * scale, (255 - zero_point) * scale
        ref = np.stack(captured[out]).reshape(y.shape)
        diff = np.abs(ref - np.clip(y, lo, hi)) / scale
        rows.append({"keras_layer": mapped[out], "tflite_ops": kinds, "max_diff_steps": round(float(diff.max()), 3),
                     "mean_diff_steps": round(float(diff.mean()), 3),
                     "within_half_step_pct": round(100.0 * float(np.mean(diff <= 0.5 + 1e-3)), 2),
                     "within_one_step_pct": round(100.0 * float(np.mean(diff <= 1 + 1e-3)), 2),
                     "clipped_pct": round(100.0 * float(np.mean((y < lo - scale / 2) | (y > hi + scale / 2))), 3)})
    return rows


def _pct(x) -> float:
    return round(100.0 * float(np.mean(x)), 2)


def _fmt(m: dict) -> str:
    return f"{m['pct']}% [{m['ci95'][0]}, {m['ci95'][1]}]" + (f" ({m['images']} img)" if m["images"] != 1000 else "")


def markdown(r: dict) -> str:
    a, top, ties, lg = r["agreement"], r["top1"], r["ties"], r["logits_tensor"]
    targets = r["targets"]
    defs = (("literal", "literal: argmax = argmax (lowest index among tied classes)"),
            ("no_tie", "literal, on the images where the anchor's maximum is not tied"),
            ("in_tied_set", "tie-aware: the candidate's top-1 is one of the anchor's tied top classes"),
            ("sets_overlap", "tie-aware, symmetric: the two tied top sets share a class"))
    cols = ("keras_vs_xnnpack", "reference_vs_xnnpack", "keras_vs_reference")

    def grid(level):
        return [f"| {text} | " + " | ".join(_fmt(a[level][c][key]) for c in cols) + " |" for key, text in defs]

    def tie_row(name, t):
        m = t["margin_steps_pct"]
        return (f"| {name} | {t['tied_at_top_pct']}% | {t['tied_classes']['2']} / {t['tied_classes']['3']} / "
                f"{t['tied_classes']['>=4']} | " + " | ".join(f"{v}%" for v in m.values()) + " |")

    def top_row(name, t):
        return (f"| {name} | {t['literal']}% | {t['lower']}% | {t['expected']}% | {t['upper']}% | "
                f"{t.get('top5', '')} |")

    g = r["top1_gap_points"]
    op_rows = r["op_local_summary"]
    lines = [
        "# Weight import from the TF-slim 8-bit MobileNetV3-Small .tflite: agreement with the file",
        "",
        f"`{r['command']}` (commit {r['commit']}, {r['machine']}, 1 interpreter thread; run time "
        f"{r['run_s']:.0f} s). {r['input']}; {r['images']} images, {r['images_with_imagenet_class']} of them of a "
        f"class mapped to ImageNet through words.txt and labels_1001.txt ({r['classes_mapped']} of 200 classes; "
        "'crane' names two ImageNet classes). Keras model: `model_from_tflite(file, 'mobilenetv3_small_100_tf')`, "
        "what `tflkit weights import` saves. XNNPACK = the file as LiteRT runs it by default (the .tflite of the "
        "issue); reference = the built-in kernels (XNNPACK off). Percentages with a 95% Wilson interval.",
        "",
        "## Targets (issue 13), stated both ways",
        "",
        "| definition | agreement (>= 90%) | top-1 gap Keras - .tflite (within 2 points) |",
        "|---|---|---|",
        f"| literal (the issue's words: argmax vs argmax of the file's output) | "
        f"{targets['literal']['agreement_pct']}%: {'met' if targets['literal']['agreement_met'] else 'NOT met'} | "
        f"{targets['literal']['gap_points']:+.2f}: {'met' if targets['literal']['gap_met'] else 'NOT met'} |",
        f"| tie-aware (Keras top-1 among the file's tied top classes; file's top-1 counted 1/k when the truth is "
        f"one of k tied classes) | {targets['tie_aware']['agreement_pct']}%: "
        f"{'met' if targets['tie_aware']['agreement_met'] else 'NOT met'} | {targets['tie_aware']['gap_points']:+.2f}"
        f" (bounds {targets['tie_aware']['gap_bounds'][0]:+.2f} .. {targets['tie_aware']['gap_bounds'][1]:+.2f}): "
        f"{'met' if targets['tie_aware']['gap_met'] else 'NOT met'} |",
        "",
        "The tie-aware row is a second reading, not a replacement: the issue's literal target is the first row.",
        "",
        "## Ties in the file's uint8 output",
        "",
        f"Softmax output step 1/256; logits tensor `{r['logits_tensor_name']}` step {lg['step']:.4f} "
        f"(range {lg['range'][0]:.2f} .. {lg['range'][1]:.2f}, {lg['median_range_steps']:.0f} steps used per image "
        f"on median).",
        "",
        "| output | max tied | 2 / 3 / >=4 classes tied | margin 0 | 1 | 2 | 3 | 4-7 | 8-15 | >=16 steps |",
        "|---|---|---|---|---|---|---|---|---|---|",
        tie_row("softmax, XNNPACK", ties["xnnpack_softmax"]), tie_row("softmax, reference", ties["reference_softmax"]),
        tie_row("logits, XNNPACK", ties["xnnpack_logits"]), tie_row("logits, reference", ties["reference_logits"]),
        "",
        f"Of the XNNPACK softmax ties, {ties['softmax_ties_created_by_softmax_rounding']} images have a single top "
        f"logit that the softmax's 1/256 rounding ties with another class; the rest are tied already in the logits. "
        f"Check that the logits tensor was read right: its top classes lie inside the softmax's tied top on "
        f"{r['logits_read_check_pct']}% of images. The Keras model's float logits: first-second margin below one "
        f"logit step ({lg['step']:.4f}) on {lg['keras_margin_below_one_step_pct']}% of images (median margin "
        f"{lg['keras_margin_median_steps']} steps); Keras logits outside the tensor's range on "
        f"{lg['keras_outside_range_pct']}% of images.",
        "",
        "## Top-1 agreement (candidate vs anchor)",
        "",
        "On the file's output (uint8 softmax):",
        "",
        "| definition | Keras vs XNNPACK | reference vs XNNPACK | Keras vs reference |", "|---|---|---|---|",
        *grid("softmax"),
        "",
        "On the pre-softmax logits tensor (uint8, dequantized):",
        "",
        "| definition | Keras vs XNNPACK | reference vs XNNPACK | Keras vs reference |", "|---|---|---|---|",
        *grid("logits"),
        "",
        "Literal agreement by the XNNPACK softmax's first-second margin:",
        "",
        "| margin (steps of 1/256) | images | Keras vs XNNPACK | reference vs XNNPACK |", "|---|---|---|---|",
        *[f"| {b['margin']} | {b['images']} | {b['keras_vs_xnnpack_pct']}% | {b['reference_vs_xnnpack_pct']}% |"
          for b in r["agreement_by_margin"]],
        "",
        "| other measures (anchor: XNNPACK softmax) | value |", "|---|---|",
        f"| literal agreement as the previous run computed it (np.argsort: ties broken in no defined order) | "
        f"{r['top1_agreement_keras_vs_tflite_argsort']}% |",
        f"| literal, on the {r['images_tflite_top1_prob_ge_0.5']} images the file gives >= 0.5 probability | "
        f"{r['top1_agreement_where_tflite_top1_prob_ge_0.5']}% |",
        f"| the file's top-1 inside the Keras top-5 | {r['tflite_top1_in_keras_top5']}% |",
        *[f"| diagnostic twin ({text}) | {e['literal']}% literal, {e['in_tied_set']}% tie-aware; vs the reference "
          f"kernels {e['literal_vs_reference']}% literal; ImageNet top-1 {e['imagenet_top1']}% |"
          for text, e in ((f"the imported weights with the file's {r['emulated_activation_tensors']} uint8 activation "
                           "ranges clipped", r["emulated"]["clip"]),
                          ("clipped and rounded to each tensor's step", r["emulated"]["clip_and_round"]))],
        "",
        f"Distance between the logits (Keras and twin clipped to the logits tensor's range; all {r['images']} "
        "images):",
        "",
        "| pair | mean abs diff (logit steps) | mean per-image correlation |", "|---|---|---|",
        *[f"| {k.replace('_', ' ')} | {v['mean_diff_steps']} | {v['mean_corr']} |"
          for k, v in r["logit_distance"].items()],
        "",
        f"XNNPACK against the reference kernels along the depth ({r['op_local_images']} images; the block outputs "
        "the XNNPACK run writes):",
        "",
        "| tensor | mean abs diff (steps) | values differing |", "|---|---|---|",
        *[f"| {k['tensor']} | {k['mean_diff_steps']} | {k['values_differing_pct']}% |"
          for k in r["kernel_divergence"]],
        "",
        f"## ImageNet top-1 ({r['images_with_imagenet_class']} labelled images)",
        "",
        "| model | literal | lower (sole max) | expected (1/k) | upper (in tied set) | top-5 |",
        "|---|---|---|---|---|---|",
        top_row("Keras (float)", top["keras"]), top_row(".tflite XNNPACK, softmax", top["xnnpack_softmax"]),
        top_row(".tflite reference, softmax", top["reference_softmax"]),
        top_row(".tflite XNNPACK, logits", top["xnnpack_logits"]),
        top_row(".tflite reference, logits", top["reference_logits"]),
        "",
        "| gap | points | 95% interval (paired) |", "|---|---|---|",
        *[f"| {name} | {v['points']:+.2f} | {v['ci95'][0]:+.2f} .. {v['ci95'][1]:+.2f} |" for name, v in g.items()
          if isinstance(v, dict)],
        f"| Keras - XNNPACK softmax, tie bounds (Keras - upper .. Keras - lower) | "
        f"{g['keras_vs_xnnpack_bounds'][0]:+.2f} .. {g['keras_vs_xnnpack_bounds'][1]:+.2f} | |",
        "",
        f"## Does the Keras model compute what the file computes? Op by op, on {r['op_local_images']} images",
        "",
        "Every op of the file (RESHAPE and SOFTMAX aside) against its Keras counterpart, each fed the file's own "
        "dequantized input(s) from the reference kernels; difference in steps of the op's output tensor. An op "
        "imported and modelled right is within half a step (one rounding); the hard sigmoid is two ops of the file "
        "(ADD+RELU6, MUL), two roundings.",
        "",
        "| op kind | ops | worst max diff (steps) | mean diff (steps) | least share within 0.5 step | within 1 step |",
        "|---|---|---|---|---|---|",
        *[f"| {k} | {v['ops']} | {v['max_diff_steps']} | {v['mean_diff_steps']} | {v['min_within_half_step_pct']}% |"
          f" {v['min_within_one_step_pct']}% |" for k, v in op_rows.items()],
        "",
        "Layer-local check by block, on the first image (each block of the Keras model fed the file's dequantized "
        "block input; several roundings of the file inside each block):",
        "", "| block output | max diff (steps) | mean diff (steps) | correlation |", "|---|---|---|---|",
        *[f"| {b['block_out']} | {b['max_diff_steps']} | {b['mean_diff_steps']} | {b['corr']} |"
          for b in r["layer_local_first_image"]],
        "",
        "## Reading",
        "",
        "\n\n".join(r["reading"]),
        "",
    ]
    return "\n".join(lines)


def _summarize_ops(rows: list[dict]) -> dict:
    kinds = {}
    for row in rows:
        kinds.setdefault(row["tflite_ops"], []).append(row)
    return {k: {"ops": len(v), "max_diff_steps": max(x["max_diff_steps"] for x in v),
                "mean_diff_steps": round(float(np.mean([x["mean_diff_steps"] for x in v])), 3),
                "min_within_half_step_pct": min(x["within_half_step_pct"] for x in v),
                "min_within_one_step_pct": min(x["within_one_step_pct"] for x in v)} for k, v in kinds.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="~/.cache/tflkit-data", help="holds tiny-imagenet-200/")
    parser.add_argument("--tflite", default=str(WEIGHTS / "v3-small_224_1.0_uint8.tflite"))
    parser.add_argument("--labels", default=str(WEIGHTS / "labels_1001.txt"))
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--op-local-images", type=int, default=8, help="images for the op-by-op check")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tflite_import_agreement"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tflkit.core.fileio import atomic_write_text
    from tflkit.weights.tflite import model_from_tflite

    run_start = time.time()
    data_dir = Path(args.data_dir).expanduser() / "tiny-imagenet-200"
    model, report = model_from_tflite(args.tflite, MODEL)
    import_s = time.time() - run_start
    index = imagenet_index(data_dir, Path(args.labels))
    images, wnids = load_images(data_dir, args.images, 224)
    truth = np.array([index.get(w, -1) for w in wnids])
    labelled = truth >= 0

    t0 = time.time()
    keras_logits = model.predict(images.astype(np.float32), batch_size=50, verbose=0)
    keras_s = time.time() - t0
    keras_top5 = np.argsort(-keras_logits, axis=1, kind="stable")[:, :5]
    keras_top1 = keras_logits.argmax(1)
    keras_sets = np.zeros(keras_logits.shape, bool)
    keras_sets[np.arange(len(images)), keras_top1] = True
    runs = {"xnnpack": tflite_outputs(args.tflite, images), "reference": tflite_outputs(args.tflite, images, False)}
    ranges = activation_ranges(args.tflite, model)
    emulated_logits = {mode: emulated_8bit(model, ranges, rounding=mode == "clip_and_round").predict(
        images.astype(np.float32), batch_size=50, verbose=0) for mode in ("clip", "clip_and_round")}
    emulated = {mode: v.argmax(1) for mode, v in emulated_logits.items()}

    xnn, ref = runs["xnnpack"]["probs"], runs["reference"]["probs"]
    xnn_top5 = np.argsort(-xnn.astype(np.int32), axis=1, kind="stable")[:, :5]  # ties: lowest index first
    agreement = {}
    for level in ("softmax", "logits"):
        key = "probs" if level == "softmax" else "logits"
        x, rf = runs["xnnpack"][key], runs["reference"][key]
        agreement[level] = {"keras_vs_xnnpack": agreement_measures(keras_top1, keras_sets, x),
                            "reference_vs_xnnpack": agreement_measures(rf.argmax(1), top_sets(rf), x),
                            "keras_vs_reference": agreement_measures(keras_top1, keras_sets, rf)}
    margin = margin_steps(xnn)
    by_margin = []
    for name, mask in (("0 (tie)", margin == 0), ("1-3", (margin >= 1) & (margin <= 3)),
                       ("4-15", (margin >= 4) & (margin <= 15)), (">=16", margin >= 16)):
        by_margin.append({"margin": name, "images": int(mask.sum()),
                          "keras_vs_xnnpack_pct": _pct(keras_top1[mask] == xnn[mask].argmax(1)),
                          "reference_vs_xnnpack_pct": _pct(ref[mask].argmax(1) == xnn[mask].argmax(1))})

    lscale, lzero = runs["xnnpack"]["logits_quant"]
    lrange = (-lzero * lscale, (255 - lzero) * lscale)
    keras_sorted = np.sort(keras_logits, axis=1)
    keras_margin = (keras_sorted[:, -1] - keras_sorted[:, -2]) / lscale
    xl = runs["xnnpack"]["logits"].astype(np.int32)
    logits_info = {"step": float(lscale), "range": [float(lrange[0]), float(lrange[1])],
                   "median_range_steps": float(np.median(xl.max(1) - xl.min(1))),
                   "keras_margin_below_one_step_pct": _pct(keras_margin < 1),
                   "keras_margin_median_steps": round(float(np.median(keras_margin)), 2),
                   "keras_outside_range_pct": _pct((keras_logits.max(1) > lrange[1])
                                                   | (keras_logits.min(1) < lrange[0]))}
    xl_sets, xp_sets = top_sets(runs["xnnpack"]["logits"]), top_sets(xnn)
    deq = {run: (runs[run]["logits"].astype(np.float32) - lzero) * lscale for run in runs}

    def clipped(v):
        return np.clip(v, *lrange)

    logit_dist = {"keras_vs_xnnpack": logit_distance(clipped(keras_logits), deq["xnnpack"], lscale),
                  "keras_vs_reference": logit_distance(clipped(keras_logits), deq["reference"], lscale),
                  "reference_vs_xnnpack": logit_distance(deq["reference"], deq["xnnpack"], lscale),
                  "twin_clip_and_round_vs_xnnpack": logit_distance(clipped(emulated_logits["clip_and_round"]),
                                                                   deq["xnnpack"], lscale),
                  "twin_clip_and_round_vs_reference": logit_distance(clipped(emulated_logits["clip_and_round"]),
                                                                     deq["reference"], lscale)}
    ties = {f"{run}_{level}": tie_profile(runs[run][key]) for run in ("xnnpack", "reference")
            for level, key in (("softmax", "probs"), ("logits", "logits"))}
    ties["softmax_ties_created_by_softmax_rounding"] = int(np.sum((xl_sets.sum(1) == 1) & (xp_sets.sum(1) > 1)))

    lab = labelled
    top1 = {"keras": {k: _pct(keras_top1[lab] == truth[lab]) for k in ("literal", "lower", "expected", "upper")}}
    top1["keras"]["top5"] = _pct([t in row for t, row in zip(truth[lab], keras_top5[lab])])
    scores = {}
    for run in ("xnnpack", "reference"):
        for level, key in (("softmax", "probs"), ("logits", "logits")):
            s = tie_aware_top1(runs[run][key][lab], truth[lab])
            scores[f"{run}_{level}"] = s
            top1[f"{run}_{level}"] = {k: _pct(v) for k, v in s.items()}
    top1["xnnpack_softmax"]["top5"] = _pct([t in row for t, row in zip(truth[lab], xnn_top5[lab])])
    keras_right = (keras_top1[lab] == truth[lab]).astype(float)
    xs = scores["xnnpack_softmax"]
    gap = {"Keras - XNNPACK softmax, literal": paired_gap(keras_right, xs["literal"]),
           "Keras - XNNPACK softmax, tie-aware expected (1/k)": paired_gap(keras_right, xs["expected"]),
           "Keras - XNNPACK logits, literal": paired_gap(keras_right, scores["xnnpack_logits"]["literal"]),
           "reference - XNNPACK softmax, literal (kernel-set noise)": paired_gap(
               scores["reference_softmax"]["literal"], xs["literal"]),
           "reference - XNNPACK softmax, expected (kernel-set noise)": paired_gap(
               scores["reference_softmax"]["expected"], xs["expected"]),
           "keras_vs_xnnpack_bounds": [round(100 * float(np.mean(keras_right - xs["upper"])), 2),
                                       round(100 * float(np.mean(keras_right - xs["lower"])), 2)]}
    lit, aware = agreement["softmax"]["keras_vs_xnnpack"]["literal"], agreement["softmax"]["keras_vs_xnnpack"][
        "in_tied_set"]
    gap_lit = gap["Keras - XNNPACK softmax, literal"]["points"]
    gap_exp = gap["Keras - XNNPACK softmax, tie-aware expected (1/k)"]["points"]
    targets = {"literal": {"agreement_pct": lit["pct"], "agreement_met": lit["pct"] >= 90, "gap_points": gap_lit,
                           "gap_met": abs(gap_lit) <= 2},
               "tie_aware": {"agreement_pct": aware["pct"], "agreement_met": aware["pct"] >= 90,
                             "gap_points": gap_exp, "gap_bounds": gap["keras_vs_xnnpack_bounds"],
                             "gap_met": abs(gap_exp) <= 2}}
    argsort_top1 = np.argsort(-xnn.astype(np.float32), axis=1)[:, 0]  # what the previous version computed
    confident = xnn.max(1) * runs["xnnpack"]["probs_quant"][0] >= 0.5
    op_rows = op_local(args.tflite, model, images[:args.op_local_images])

    result = {
        "model": MODEL, "source": Path(args.tflite).name, "images": len(images),
        "images_with_imagenet_class": int(labelled.sum()), "classes_mapped": len(index),
        "input": "Tiny ImageNet val (annotation order), 64x64 upscaled to 224x224 bilinear (PIL)",
        "targets": targets, "agreement": agreement, "agreement_by_margin": by_margin, "ties": ties,
        "logits_tensor_name": LOGITS_TENSOR, "logits_tensor": logits_info,
        "logits_read_check_pct": _pct(np.all(~xl_sets | xp_sets, axis=1)),
        "top1": top1, "top1_gap_points": gap,
        "top1_agreement_keras_vs_tflite": lit["pct"],
        "top1_agreement_keras_vs_tflite_argsort": _pct(keras_top1 == argsort_top1),
        "images_tflite_top1_prob_ge_0.5": int(confident.sum()),
        "top1_agreement_where_tflite_top1_prob_ge_0.5": _pct(keras_top1[confident] == xnn[confident].argmax(1)),
        "tflite_top1_in_keras_top5": _pct([a in b for a, b in zip(xnn.argmax(1), keras_top5)]),
        "top1_agreement_tflite_xnnpack_vs_reference_kernels": agreement["softmax"]["reference_vs_xnnpack"][
            "literal"]["pct"],
        "emulated_activation_tensors": len(ranges),
        "emulated": {mode: {"literal": _pct(top == xnn.argmax(1)),
                            "in_tied_set": _pct(xp_sets[np.arange(len(top)), top]),
                            "literal_vs_reference": _pct(top == ref.argmax(1)),
                            "imagenet_top1": _pct(top[labelled] == truth[labelled])} for mode, top in emulated.items()},
        "logit_distance": logit_dist,
        "kernel_divergence": kernel_divergence(args.tflite, images[:args.op_local_images]),
        "layers_loaded": len(report["loaded_layers"]),
        "op_local_images": min(args.op_local_images, len(images)), "op_local_summary": _summarize_ops(op_rows),
        "op_local": op_rows,
        "layer_local_first_image": layer_local(args.tflite, model, images[0]),
        "import_s": round(import_s, 2), "keras_predict_s": round(keras_s, 1),
        "tflite_invoke_s": {k: round(v["invoke_s"], 1) for k, v in runs.items()},
        "command": "nice -n 5 .venv/bin/python -m benchmarks.archive.tflite_import_agreement " + " ".join(sys.argv[1:]),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    result["run_s"] = round(time.time() - run_start, 1)
    result["reading"] = reading(result)
    atomic_write_text(args.out + ".json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(args.out + ".md", markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k not in ("op_local", "layer_local_first_image")},
                     indent=1))
    return 0


def reading(r: dict) -> list[str]:
    """The reading of a run, its figures taken from the run (the statements were checked on the committed run)."""
    soft, logit = r["agreement"]["softmax"], r["logits_tensor"]
    kx, rx = soft["keras_vs_xnnpack"], soft["reference_vs_xnnpack"]
    ties, tw, d, g = r["ties"]["xnnpack_softmax"], r["emulated"]["clip_and_round"], r["logit_distance"], r[
        "top1_gap_points"]
    big = next(b for b in r["agreement_by_margin"] if b["margin"] == ">=16")
    div = r["kernel_divergence"]
    worst = max(row["max_diff_steps"] for row in r["op_local"])
    one_op = [row for row in r["op_local"] if "+" not in row["tflite_ops"] and not row["tflite_ops"].startswith("in")]
    worst_one = max(row["max_diff_steps"] for row in one_op)
    means = [v["mean_diff_steps"] for k, v in r["op_local_summary"].items() if "+" not in k and k.isupper()]
    within_one = min(row["within_one_step_pct"] for row in r["op_local"])
    t = r["targets"]
    lit_gap, last = g["Keras - XNNPACK softmax, literal"], div[-1]["mean_diff_steps"]
    twin_steps = d["twin_clip_and_round_vs_xnnpack"]["mean_diff_steps"]
    than = "more than" if tw["literal"] > rx["literal"]["pct"] else "less than"
    nearer = "nearer" if twin_steps < d["reference_vs_xnnpack"]["mean_diff_steps"] else "farther"
    return [
        f"**Ties explain little.** The file's uint8 softmax has a tied maximum on {ties['tied_at_top_pct']}% of the "
        f"images (mostly two classes), and every such tie is already a tie in the uint8 logits (step "
        f"{logit['step']:.4f}), so the logits tensor gives the same agreement as the output. Counting a tie as "
        f"agreement moves Keras-vs-file from {kx['literal']['pct']}% to {kx['in_tied_set']['pct']}% and the file's "
        f"self-agreement from {rx['literal']['pct']}% to {rx['in_tied_set']['pct']}% "
        f"({rx['sets_overlap']['pct']}% with overlapping tie sets). The first-second margin is 16 steps (6 points "
        f"of probability) or more on {ties['margin_steps_pct']['>=16']}% of the images, and even there the two "
        f"kernel sets disagree on {100 - big['reference_vs_xnnpack_pct']:.1f}% of them. The hypothesis that the "
        "file's top-1 is ill-defined because of tied maxima is not borne out: it is ill-defined on these images "
        "because the 8-bit computation itself is unstable.",
        f"**Where the instability comes from.** XNNPACK and the reference kernels give the same stem output and "
        f"differ on {div[1]['values_differing_pct']}% of the values after block 0 (by one step), but the early "
        f"tensors are coarse (block 0's depthwise output has a step of 0.99, its projection 2.01), so one-step "
        f"rounding differences there grow to a mean of {max(x['mean_diff_steps'] for x in div[:-1]):.1f} steps in "
        f"the middle blocks and {last:.2f} logit steps ({last * logit['step']:.2f} in logit units) at the logits. "
        "On 64-pixel images blown up to 224 the model is rarely sure, and that "
        "is enough to move its top-1.",
        f"**Keras vs the file, against the file vs itself: no, not as well.** Literal {kx['literal']['pct']}% "
        f"against {rx['literal']['pct']}%; tie-aware {kx['in_tied_set']['pct']}% against "
        f"{rx['in_tied_set']['pct']}%; logits {d['keras_vs_xnnpack']['mean_diff_steps']} steps apart (correlation "
        f"{d['keras_vs_xnnpack']['mean_corr']}) against {d['reference_vs_xnnpack']['mean_diff_steps']} "
        f"({d['reference_vs_xnnpack']['mean_corr']}). But the two are not the same size of change: the kernel "
        "sets differ in rounding details, the float model drops every rounding and every one of the file's "
        "activation ranges at once. The diagnostic twin that puts the file's clipping and rounding back on the same "
        f"imported weights agrees with XNNPACK on {tw['literal']}% ({tw['in_tied_set']}% tie-aware), {than} "
        f"the file's own reference kernels do, and its logits are {twin_steps} steps from XNNPACK's, {nearer} than "
        "the reference kernels'.",
        f"**No import bug.** Op by op, each of the file's ops (RESHAPE and SOFTMAX aside) fed its own input is "
        f"reproduced by its Keras counterpart to within {worst_one} of a step at worst for a single op "
        f"({worst} for the hard sigmoid, two ops of the file), {within_one}% of all values within one step, "
        f"{min(means):.2f} to {max(means):.2f} step on average (one rounding); the input dequantization is exact. "
        "Weights, folded biases, "
        "restored BatchNorms, layouts, activations, squeeze-excite and shortcuts are mapped right; nothing to fix in "
        "tflkit/weights/tflite.py or tflkit/models/mobilenetv3_tf.py. The block-local figures (a few steps) are "
        "the file's own several roundings per block.",
        f"**Top-1 gap.** Keras - file {lit_gap['points']:+.2f} points literal (95% "
        f"{lit_gap['ci95'][0]:+.2f} .. {lit_gap['ci95'][1]:+.2f}), "
        f"{g['Keras - XNNPACK softmax, tie-aware expected (1/k)']['points']:+.2f} tie-aware (bounds "
        f"{g['keras_vs_xnnpack_bounds'][0]:+.2f} .. {g['keras_vs_xnnpack_bounds'][1]:+.2f}); between the kernel sets "
        f"{g['reference - XNNPACK softmax, literal (kernel-set noise)']['points']:+.2f}. So the gap is not a tie "
        "artifact nor kernel noise: on these images the float model is less accurate than the 8-bit file (the "
        f"interval's near end, {lit_gap['ci95'][1]:+.2f}, lies inside 2 points: 998 images cannot rule out a gap "
        "just under 2). The same imported weights with the file's activation ranges clipped score "
        f"{r['emulated']['clip']['imagenet_top1']}%, clipped and rounded {tw['imagenet_top1']}% (float "
        f"{r['top1']['keras']['literal']}%, the file {r['top1']['xnnpack_softmax']['literal']}%): the accuracy the "
        "float model lacks is the 8-bit arithmetic's, as expected of weights tuned for it (quantization-aware "
        "training would do that; the release's training is not documented here). A float checkpoint is not "
        "available here to compare against.",
        f"**Targets.** Literal (the issue's definition): agreement {t['literal']['agreement_pct']}% "
        f"({'met' if t['literal']['agreement_met'] else 'NOT met'}), gap {t['literal']['gap_points']:+.2f} "
        f"({'met' if t['literal']['gap_met'] else 'NOT met'}). Tie-aware: agreement {t['tie_aware']['agreement_pct']}% "
        f"({'met' if t['tie_aware']['agreement_met'] else 'NOT met'}), gap {t['tie_aware']['gap_points']:+.2f} "
        f"({'met' if t['tie_aware']['gap_met'] else 'NOT met'}). Neither reading meets the issue's targets. "
        f"90% agreement asks more of a float model than the file's two kernel sets achieve with each other "
        f"({rx['literal']['pct']}%) and than the twin that emulates its rounding achieves ({tw['literal']}%); "
        "whether the target should be restated "
        "(against the file's self-agreement, on confident images, or on full-resolution ImageNet images, which "
        "are not available here) is the issue owner's decision, not made here.",
    ]


if __name__ == "__main__":
    sys.exit(main())

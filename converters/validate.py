"""Validation of a converted model against its float model: outputs, then tensor by tensor.

Two comparisons on held-out images (ai-edge-quantizer style):
  * outputs against the float Keras model: top-1 agreement, mean and max absolute logit difference;
  * every intermediate activation against the fp32 .tflite of the same model (same graph after conversion, so
    tensors match by the layer names in their names), int8/int16 tensors dequantized with their own scale and
    zero point: SNR in dB and MSE, so the report can name the worst layers.
Also the operators by type, and any float or Flex operator left in an integer model.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from tflkit.tflite.inspect import float_ops, op_counts
from tflkit.tflite.model import TFLiteClassifier, dequantize, quantize
from tflkit.tflite.runtime import load_interpreter

DEFAULT_VALIDATION_SAMPLES = 200
DEFAULT_TENSOR_SAMPLES = 8  # per-tensor comparison runs batch 1 with every tensor kept: a few images suffice
WORST_LAYERS = 5
# SNR is measured end to end, so error piles up towards the output and the worst tensors sit near the end. The
# first tensor in graph order below this SNR is where the damage starts: the layer worth looking at.
DEGRADED_DB = 15.0
SNR_CAP_DB = 200.0


@dataclass
class TensorError:
    layer: str  # the layer (or fused layers) the tensor is the output of
    op: str
    snr_db: float
    mse: float
    position: int = 0  # graph order (0 = nearest the input)


@dataclass
class Validation:
    samples: int
    top1_agreement: float
    mean_abs_logit_diff: float
    max_abs_logit_diff: float
    tensor_samples: int = 0
    tensors_matched: int = 0
    tensors: list = field(default_factory=list)  # TensorError rows, worst SNR first
    float_ops: list = field(default_factory=list)
    op_counts: dict = field(default_factory=dict)

    @property
    def worst(self) -> TensorError | None:
        return self.tensors[0] if self.tensors else None

    @property
    def first_degraded(self) -> TensorError | None:
        below = [t for t in self.tensors if t.snr_db < DEGRADED_DB]
        return min(below, key=lambda t: t.position) if below else None

    def summary(self) -> dict:
        """The compact form that goes into exports.json rows (and from there into the report)."""
        worst = self.worst
        return {"agreement": round(self.top1_agreement, 4), "max_abs_logit_diff": round(self.max_abs_logit_diff, 4),
                "worst_layer": f"{worst.layer} ({worst.snr_db:.1f} dB)" if worst else "",
                "first_degraded": (f"{self.first_degraded.layer} ({self.first_degraded.snr_db:.1f} dB)"
                                   if self.first_degraded else ""),
                "float_ops": ",".join(self.float_ops)}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["worst_layers"] = [asdict(t) for t in self.tensors[:WORST_LAYERS]]
        d["first_degraded"] = asdict(self.first_degraded) if self.first_degraded else None
        return d


def compare_outputs(reference_logits: np.ndarray, logits: np.ndarray) -> dict:
    diff = np.abs(reference_logits.astype(np.float64) - logits)
    return {"top1_agreement": float(np.mean(reference_logits.argmax(1) == logits.argmax(1))),
            "mean_abs_logit_diff": float(diff.mean()), "max_abs_logit_diff": float(diff.max())}


def _layers_of(tensor_name: str) -> set[str]:
    """Layer names inside a converted tensor name. Both the Keras 3 export (`model_1/conv_1/Conv2D`) and tfmot's
    tf_keras graph (`model/quant_conv/Conv2D`) spell layers with decorations that are stripped here."""
    found = set()
    for part in tensor_name.split(";"):
        pieces = part.split("/")
        if len(pieces) >= 2:
            found.add(re.sub(r"_\d+$", "", re.sub(r"^quant_", "", pieces[1])))
    return found


def _op_outputs(interpreter) -> list[tuple[str, dict]]:
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    return [(op["op_name"], details[i]) for op in interpreter._get_ops_details() for i in op["outputs"]
            if i in details]


def _run_all(interpreter, image: np.ndarray, outputs) -> dict[int, np.ndarray]:
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], quantize(image[None], inp))
    interpreter.invoke()
    return {t["index"]: dequantize(interpreter.get_tensor(t["index"]), t) for _, t in outputs}


def compare_tensors(path, fp32_path, images: np.ndarray) -> tuple[list[TensorError], int]:
    """Per-tensor SNR/MSE of `path` against `fp32_path`, worst first; and how many tensors were matched."""
    quant = load_interpreter(path, preserve_all_tensors=True, xnnpack=False)
    ref = load_interpreter(fp32_path, preserve_all_tensors=True, xnnpack=False)
    q_out, r_out = _op_outputs(quant), _op_outputs(ref)
    r_layers = [(_layers_of(t["name"]), op, t) for op, t in r_out]
    r_by_name = {t["name"]: t for _, t in r_out}
    pairs = []
    for op, t in q_out:
        if op in ("QUANTIZE", "DEQUANTIZE"):
            continue
        layers = _layers_of(t["name"])
        # Same graph (post-training recipes): identical tensor names. A tfmot graph: the same layers and op type
        # (a layer lowered to several ops, e.g. hard-sigmoid's ADD/RELU6/MUL, has several tensors of one shape).
        best, best_score = r_by_name.get(t["name"]), (1, 0)
        if best is None or list(best["shape"]) != list(t["shape"]):
            best, best_score = None, (0, 0)
            for ref_layers, ref_op, rt in r_layers:
                score = (len(layers & ref_layers), ref_op == op)
                if score[0] and score > best_score and list(rt["shape"]) == list(t["shape"]):
                    best, best_score = rt, score
        if best is not None:
            pairs.append((op, t, best, "+".join(sorted(layers & _layers_of(best["name"])))))
    # The model output always matches by position, whatever it is called.
    q_final, r_final = quant.get_output_details()[0], ref.get_output_details()[0]
    if not any(p[1]["index"] == q_final["index"] for p in pairs):
        pairs.append(("OUTPUT", q_final, r_final, "output"))
    sums = {i: [0.0, 0.0, 0] for i in range(len(pairs))}  # signal, noise, count
    for image in images:
        qv, rv = _run_all(quant, image, q_out), _run_all(ref, image, r_out)
        qv.setdefault(q_final["index"], dequantize(quant.get_tensor(q_final["index"]), q_final))
        rv.setdefault(r_final["index"], ref.get_tensor(r_final["index"]))
        for i, (_, t, rt, _) in enumerate(pairs):
            a, b = rv[rt["index"]].astype(np.float64), qv[t["index"]].astype(np.float64)
            sums[i][0] += float(np.sum(a ** 2))
            sums[i][1] += float(np.sum((a - b) ** 2))
            sums[i][2] += a.size
    rows = []
    for i, (op, _, _, layer) in enumerate(pairs):
        signal, noise, count = sums[i]
        # Capped so an exact match stays valid JSON (no Infinity).
        snr = SNR_CAP_DB if noise == 0 else min(SNR_CAP_DB, 10.0 * np.log10(max(signal, 1e-30) / noise))
        rows.append(TensorError(layer=layer, op=op, snr_db=round(snr, 2), mse=noise / max(count, 1), position=i))
    rows.sort(key=lambda r: r.snr_db)
    return rows, len(pairs)


def validate(path, reference_logits: np.ndarray, images: np.ndarray, fp32_path=None,
             tensor_samples: int = DEFAULT_TENSOR_SAMPLES, integer_only: bool = True) -> Validation:
    """`reference_logits` are the float Keras model's logits on `images` (float pixels 0..255). With
    `integer_only`, float and Flex operators are listed as a defect (they are expected in a float model)."""
    logits = TFLiteClassifier(path).predict(images)
    result = Validation(samples=len(images), **compare_outputs(reference_logits, logits),
                        float_ops=float_ops(path) if integer_only else [], op_counts=op_counts(path))
    if fp32_path is not None and tensor_samples > 0:
        result.tensors, result.tensors_matched = compare_tensors(path, fp32_path, images[:tensor_samples])
        result.tensor_samples = min(tensor_samples, len(images))
    return result

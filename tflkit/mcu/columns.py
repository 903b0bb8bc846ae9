"""A `tflkit mcu` record as the flat columns of a run report and a study's rows:
  tflm (runs / refused: reason), tflm_arena_bytes, tflm_top1 (under TFLM on tflm_eval_images images),
  tflm_litert_top1 (LiteRT on the same images), tflm_agreement (their top-1 agreement),
  fits_on (the boards the file fits, `board:npu` on an Ethos-U), fits_<board> / fits_<board>_npu (True/False) with
  fits_<board>_breaks, and per Ethos-U target vela_<target>_sram_kib / _flash_kib / _ms / _cpu_ops.
"""

from __future__ import annotations

import re

from tflkit.mcu.fit import npu_problem


def mcu_columns(record: dict) -> dict:
    """One file's tflkit.mcu.measure record as row columns (named in the module's docstring)."""
    runs = bool(record.get("runs"))
    row = {"tflm": "runs" if runs else f"refused: {record.get('reason', '')}",
           "tflm_arena_bytes": record.get("arena_bytes") if runs else None,
           "tflm_top1": None, "tflm_litert_top1": None, "tflm_agreement": None, "tflm_eval_images": None}
    if record.get("eval"):
        row.update(tflm_top1=record["eval"]["top1"], tflm_litert_top1=record["eval"]["reference_top1"],
                   tflm_agreement=record["eval"]["agreement"], tflm_eval_images=record["eval"]["count"])
    fits = []
    vela = {v["target"]: v for v in record.get("vela", [])}
    for f in record.get("fits", []):
        if f["engine"] != "tflm" and f["engine"] in vela:  # records made before tflkit.mcu.fit.npu_problem existed
            problem = npu_problem(vela[f["engine"]], runs)
            if problem:
                f = {**f, "fits": False, "breaks": problem}
        key = f["board"] if f["engine"] == "tflm" else f"{f['board']}_npu"
        row[f"fits_{key}"] = f["fits"]
        row[f"fits_{key}_breaks"] = f["breaks"] or None
        if f["fits"]:
            fits.append(f["board"] + ("" if f["engine"] == "tflm" else ":npu"))
    row["fits_on"] = " ".join(fits)
    for v in record.get("vela", []):
        prefix = "vela_" + re.sub(r"[^a-z0-9]+", "_", v["target"].lower()).strip("_")
        if v["ok"]:
            row.update({f"{prefix}_sram_kib": v["sram_kib"], f"{prefix}_flash_kib": v["flash_kib"],
                        f"{prefix}_ms": v["inference_ms"], f"{prefix}_cpu_ops": v["cpu_ops"]})
    return row

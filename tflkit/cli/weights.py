"""`tflkit weights import FILE --model NAME --out model.keras`: pretrained weights from another format into a
registry model, saved as a .keras file (usable as `tflkit train --pretrained model.keras`, or converted as is).

Registered into the `tflkit` parser by `register(subparsers)`; a thin shell over tflkit.weights.tflite,
tflkit.weights.pth_port and tflkit.weights.load. With --json it prints one JSON object (the import report).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tflkit.core.errors import UsageError


def register(subparsers) -> argparse.ArgumentParser:
    weights = subparsers.add_parser("weights", help="import pretrained weights (.tflite, .pth, .h5) into a model",
                                    description="Import pretrained weights into a registry model.")
    commands = weights.add_subparsers(dest="weights_command", metavar="COMMAND", required=True)
    imp = commands.add_parser(
        "import", help="map a weights file onto a registry model, tensor by tensor with shapes checked; write .keras",
        description="A .tflite (float or quantized: dequantized, folded BatchNorm restored as an identity "
                    "BatchNormalization) keeps its own classifier and class count; a torchvision .pth (read without "
                    "torch) keeps its 1000-class head; other files (.h5, .weights.h5, .keras) load by layer name.")
    imp.add_argument("file", metavar="FILE", help=".tflite, .pth, .h5, .weights.h5 or .keras")
    imp.add_argument("--model", required=True, help="registry name of the target layout (see `tflkit models`)")
    imp.add_argument("--out", required=True, metavar="OUT.keras", help="where to write the Keras model")
    imp.add_argument("--input-size", type=int, help="input size of the built model (default: the source's, or "
                                                    "the model's default)")
    imp.add_argument("--num-classes", type=int, help="classes of the built model for .h5/.keras sources "
                                                     "(default: the model's default)")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=run_import)
    return weights


def import_weights(path, model_name: str, input_size: int | None = None, num_classes: int | None = None):
    """(model, report) for any supported weights file."""
    from tflkit.models import create_model, get_spec

    path = Path(path)
    get_spec(model_name)  # an unknown name is a one-line UsageError before anything is read
    if not path.is_file():
        raise UsageError(f"weights file not found: {path}")
    if path.suffix == ".tflite":
        from tflkit.weights.tflite import model_from_tflite

        return model_from_tflite(path, model_name, input_size=input_size)
    from tflkit.weights.load import load_weights_file

    model = create_model(model_name, num_classes=num_classes, input_size=input_size)
    loaded, skipped = load_weights_file(model, path)
    return model, {"source": str(path), "loaded_layers": loaded, "skipped_layers": skipped}


def run_import(args) -> int:
    from tflkit.core.fileio import atomic_path

    out = Path(args.out)
    if out.suffix != ".keras":
        raise UsageError(f"--out {out}: must end in .keras")
    model, report = import_weights(args.file, args.model, input_size=args.input_size, num_classes=args.num_classes)
    with atomic_path(out) as tmp:
        model.save(tmp)
    summary = {"model": args.model, "source": report["source"], "out": str(out), "status": "ok",
               "num_classes": int(model.output_shape[-1]), "input_size": int(model.input_shape[1]),
               "layers_loaded": len(report["loaded_layers"]), "layers_skipped": report["skipped_layers"]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"imported {Path(args.file).name} -> {out}  ({args.model}, {summary['num_classes']} classes, "
              f"{summary['input_size']}x{summary['input_size']}, {summary['layers_loaded']} layers loaded"
              + (f", kept own init: {', '.join(report['skipped_layers'])}" if report["skipped_layers"] else "") + ")",
              file=sys.stdout)
    return 0

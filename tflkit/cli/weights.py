"""`tflkit weights import FILE --model NAME --out model.keras`: pretrained weights from another format into a
registry model, saved as a .keras file (usable as `tflkit train --pretrained model.keras`, or converted as is).

A thin shell over tflkit.api.import_weights (tflkit.weights: .tflite, .pth without torch, .h5 and .keras).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tflkit import api
from tflkit.cli.common import JSON_HELP, Reply


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
    imp.add_argument("--image-size", type=int, help="input size of the built model (default: the source's, or "
                                                    "the model's default)")
    imp.add_argument("--num-classes", type=int, help="classes of the built model for .h5/.keras sources "
                                                     "(default: the model's default)")
    imp.add_argument("--json", action="store_true", help=JSON_HELP)
    imp.set_defaults(func=run_import)
    return weights


def run_import(args) -> Reply:
    summary = api.import_weights(args.file, args.model, args.out, image_size=args.image_size,
                                 num_classes=args.num_classes)
    if not args.json:
        skipped = summary["layers_skipped"]
        print(f"imported {Path(args.file).name} -> {summary['out']}  ({args.model}, {summary['num_classes']} classes, "
              f"{summary['image_size']}x{summary['image_size']}, {summary['layers_loaded']} layers loaded"
              + (f", kept own init: {', '.join(skipped)}" if skipped else "") + ")")
    return Reply("weights import", [summary])

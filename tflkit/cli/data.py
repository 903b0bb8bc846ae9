"""`tflkit models` and `tflkit data`: the registered architectures, and what a dataset source holds (tflkit.api)."""

from __future__ import annotations

from tflkit import api
from tflkit.cli.common import JSON_HELP, Reply, item_error, log_line
from tflkit.data.check import check_lines


def cmd_models(args) -> Reply:
    rows = api.models(include_test=args.all, macs=not args.no_macs)
    if not args.json:
        print(f"{'name':<24} {'input':>5} {'params':>12} {'MACs':>10} {'ref params':>12} {'ref MACs':>10}  reference")
        for r in rows:
            macs = f"{r['macs'] / 1e6:.1f}M" if r.get("macs") else "-"
            ref_macs = f"{r['reference_macs'] / 1e6:.1f}M" if r.get("reference_macs") else "-"
            ref_params = f"{r['reference_params']:,}" if r.get("reference_params") else "-"
            print(f"{r['name']:<24} {r['image_size']:>5} {r['params']:>12,} {macs:>10} {ref_params:>12} "
                  f"{ref_macs:>10}  {r.get('reference', '')}")
    return Reply("models", rows)


def cmd_data(args) -> Reply:
    info = api.dataset(args.spec, data_dir=args.data_dir, seed=args.seed, check=args.check, prepare=args.prepare,
                       archive=args.from_file, log=log_line)
    reply = Reply("data", [info])
    if args.check:  # every file decoded: unreadable files and empty classes are this command's failed items
        reply.errors = [item_error(i["path"], f"unreadable image ({i['reason']})") for i in info["check"]["unreadable"]]
        reply.errors += [item_error(name, "empty class") for name in info["check"]["empty_classes"]]
    if args.json:
        return reply
    print(f"{info['label']}  ({info['num_classes']} classes, {info['image_size']}x{info['image_size']} native)")
    for name, count in info["splits"].items():
        print(f"  {name:<6} {count:>8,} images")
    for note in info["notes"]:
        print(f"  note: {note}")
    shown = info["classes"][:20]
    more = f", ... ({len(info['classes']) - 20} more)" if len(info["classes"]) > 20 else ""
    print(f"  classes: {', '.join(shown)}{more}")
    if args.check:
        print("\n".join(check_lines(info["check"])))
    return reply


def register(sub) -> None:
    p = sub.add_parser("models", help="list the registered architectures with parameters and MACs",
                       description="Parameters and MACs are counted from each model's Keras layers (seconds), "
                                   "then cached in ~/.cache/tflkit until the model code changes.")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--all", action="store_true", help="include the tiny test variants")
    p.add_argument("--no-macs", action="store_true", help="skip MAC counting")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("data", help="describe a dataset source: splits, classes, image size")
    p.add_argument("spec", help="shapes, cifar10, cifar100[:coarse], tiny_imagenet, folder:PATH or auto")
    p.add_argument("--data-dir", help="where the dataset's files are (official downloads read directly)")
    p.add_argument("--seed", type=int, default=0, help="seed of a carved val split (default: 0)")
    p.add_argument("--check", action="store_true", help="decode every image; list unreadable files and empty "
                                                        "classes (exit 1 if any)")
    p.add_argument("--prepare", action="store_true",
                   help="cifar10, cifar100, tiny_imagenet: download the official archive (MD5-checked) and unpack it "
                        "into --data-dir (default $TFLKIT_DATA or ~/.cache/tflkit-data), where every command finds it")
    p.add_argument("--from", dest="from_file", metavar="ARCHIVE",
                   help="with --prepare: the official archive already downloaded (cifar-10-python.tar.gz, ...)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_data)

"""`python -m android_bench android ...`: the Android commands without tflkit's main CLI (for tests and debugging).

Behaves like `tflkit android ...`: a TflkitError becomes `tflkit: error: <message>` and its exit code.
"""

from __future__ import annotations

import argparse
import sys

from android_bench.cli import register
from tflkit.errors import TflkitError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m android_bench")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TflkitError as exc:
        print(f"tflkit: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

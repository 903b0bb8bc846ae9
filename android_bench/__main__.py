"""`python -m android_bench android ...`: the Android commands without tflkit's main CLI (for tests and debugging).

Behaves like `tflkit android ...`: a TflkitError becomes `tflkit: error: <message>` and its exit code.
"""

from __future__ import annotations

import argparse
import sys

from android_bench.cli import register
from tflkit.cli import dispatch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m android_bench")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

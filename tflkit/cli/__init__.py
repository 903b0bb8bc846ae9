"""The `tflkit` command: a thin shell over the Python API (tflkit.api). Each command parses its flags, calls the API,
prints for a person, and returns a Reply (tflkit.core.reply), which `--json` prints as the one envelope.

Every command follows one convention:
- Exit 0 when everything asked for succeeded; 1 when some item failed (a recipe, a model, a phone: the rest is
  done and reported); 2 for usage errors and missing inputs (a bad name or value, a file or directory that is not
  there). An error a user can cause is one line on stderr, `tflkit: error: ...`, argparse's included.
- `--json`, on every command that prints results, prints one JSON object on stdout, shaped the same everywhere:
      {"command": "bench", "ok": false,
       "results": [{...one object per item done...}],
       "errors": [{"item": "m.fp16.tflite", "message": "delegate_failed: ..."}]}
  `ok` is true exactly when the exit code is 0; `errors` has one entry per failed item, or the one error that
  stopped the command (item null). Progress and logs go to stderr meanwhile.
- TensorFlow's and LiteRT's own log noise (CUDA probing, converter debug lines, delegate INFO lines) and library
  warnings are kept off the terminal unless `--verbose` (tflkit.core.tfenv).
The commands live in modules of their own (run, data, inspect, study, tune, mcu, weights; android_bench's), each
with `register(subparsers)` and handlers that call tflkit.api and return a Reply.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings

from android_bench.cli import register as register_android
from tflkit.cli import data, inspect, mcu, run, study, tune, weights
from tflkit.cli.common import JSON_HELP, Reply, item_error
from tflkit.core.errors import TflkitError, UsageError
from tflkit.core.tfenv import filtered_stderr, set_verbose
from tflkit.core.tfenv import verbose as verbose_env

__all__ = ["main", "dispatch", "build_parser", "JSON_HELP", "Reply"]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="tflkit", description=__doc__.splitlines()[0], epilog=CONVENTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.register(sub)
    run.register(sub)
    inspect.register(sub)
    register_android(sub)
    study.register(sub)
    tune.register(sub)
    mcu.register(sub)
    weights.register(sub)
    _complete_leaves(parser)
    return parser


CONVENTION = """\
exit codes: 0 everything asked for succeeded; 1 some item failed (the rest done and reported);
            2 usage error or missing input
--json:     one object on stdout, the same shape for every command:
            {"command": "bench", "ok": true, "results": [{...}, ...], "errors": [{"item": ..., "message": ...}]}
--verbose:  let TensorFlow's own logging and library warnings through (hidden by default)"""
VERBOSE_HELP = "show TensorFlow's and LiteRT's own log lines and library warnings (hidden by default)"


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse's errors as a UsageError: one line naming the command, exit 2, JSON with --json."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _complete_leaves(parser: argparse.ArgumentParser) -> None:
    """Every leaf command, the registered ones included, takes --verbose and describes --json the same way."""
    children = _subcommands(parser)
    for child in children.values():
        _complete_leaves(child)
    if children:
        return
    if "--verbose" not in parser._option_string_actions:
        # SUPPRESS: an absent leaf flag must not overwrite `tflkit --verbose CMD`'s value
        parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    json_flag = parser._option_string_actions.get("--json")
    if json_flag is not None and not json_flag.help:
        json_flag.help = JSON_HELP


def command_name(args) -> str:
    """`bench`, `android devices`: the command and any nested subcommand."""
    nested = [v for k, v in sorted(vars(args).items()) if k.endswith("_command") and isinstance(v, str)]
    return " ".join([args.command, *nested])


def _command_in(argv, parser) -> str | None:
    words = []
    for token in argv:
        if token.startswith("-"):
            continue
        children = _subcommands(parser)
        if token not in children:
            break
        words.append(token)
        parser = children[token]
    return " ".join(words) or None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _failed(exc, _command_in(argv, parser), as_json="--json" in argv)
    try:
        return dispatch(args)
    except BrokenPipeError:  # `tflkit ... | head`: the reader left; no traceback about it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def dispatch(args) -> int:
    """Run a parsed subcommand under the convention: TensorFlow's noise filtered (unless --verbose), a TflkitError
    as one line on stderr and its exit code, the JSON envelope under --json."""
    verbose = bool(getattr(args, "verbose", False)) or verbose_env()
    set_verbose(verbose)
    as_json = bool(getattr(args, "json", False))
    command = command_name(args)
    with contextlib.ExitStack() as stack:
        if not verbose:
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")  # library deprecation chatter; --verbose shows it
            stack.enter_context(filtered_stderr())
        try:
            return _run(args, command, as_json)
        except TflkitError as exc:
            return _failed(exc, command, as_json)
        except KeyboardInterrupt:
            sys.stdout.flush()
            # on its own line: a progress bar may have left the cursor mid-line
            print(("\n" if sys.stderr.isatty() else "") + "tflkit: interrupted", file=sys.stderr)
            return 130


def _run(args, command: str, as_json: bool) -> int:
    if not as_json:
        return args.func(args).exit_code
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # progress on stderr: stdout carries the JSON alone
        reply = args.func(args)
    print(json.dumps(reply.to_dict(), indent=2, default=str), file=stdout)
    return reply.exit_code


def _failed(exc: TflkitError, command: str | None, as_json: bool) -> int:
    print(f"tflkit: error: {exc}", file=sys.stderr)
    if as_json:
        print(json.dumps(Reply(command, [], [item_error(None, str(exc))], code=exc.exit_code).to_dict(), indent=2))
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

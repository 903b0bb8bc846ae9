#!/usr/bin/env python3
"""Replay the README's quick start in a fresh clone and write down what happened.

    python docs/quickstart.py [--out docs/quickstart-transcript.md] [--timeout 1800] [--keep]
    python docs/quickstart.py --dry-run        # only list the commands the README's quick start has

The commands are read from README.md, never written here: every `sh` block between `<!-- quickstart:begin -->` and
`<!-- quickstart:end -->`, one command a line (a line ending in a backslash continues), comment lines skipped. An
`<!-- quickstart:if-shared-data -->` comment makes the next block run only where `../shared/data/materialize.py`
exists beside the repository (this project's machines), `<!-- quickstart:else -->` the next block only where it does
not (a user with a network, who downloads the data).

What it does: `git clone` the repository (its HEAD: uncommitted changes are not in the clone, and the transcript says
so) into a temporary directory, link `../shared` beside the clone when the repository has one, and run each command
there through bash, in order, each with a time-out, its stdout and stderr together. Two things differ from a user's
run: the data folder is a temporary one (`$TFLKIT_DATA`, and `~/.cache/tflkit-data` in a command is replaced by it),
and a command that only changes the shell (`. .venv/bin/activate`, `source`, `export`, `cd`) is carried into every
later command, as it would be in the user's shell. It stops at the first command that fails.

The transcript (markdown) gives the date, the commit, the CPU model and its flags (avx2, avx512f, avx512_vnni,
avx512_bf16, amx_tile), then for every command: the command line, its exit code, its wall seconds and the last lines
of its output. It is rewritten after every command, so a run killed midway leaves what it had done.

Standard library only. The whole quick start takes about a quarter of an hour of CPU (it installs tflkit, trains
three times and runs a study), so run it on a machine with nothing else being timed.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
MARKER = re.compile(r"<!--\s*quickstart:([a-z-]+)\s*-->")
FENCE = re.compile(r"^```\s*([A-Za-z]*)\s*$")
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
CONDITIONS = {"shared-data"}  # what an if-NAME marker may test
STATE = re.compile(r"^(\.|source|export|cd)\s")  # commands that change the shell, carried into later ones
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
DATA_DIR = "~/.cache/tflkit-data"  # tflkit's default data folder; replaced by a temporary one
TAIL_LINES = 25


class QuickstartError(Exception):
    """The README's quick start section is missing or malformed."""


@dataclasses.dataclass(frozen=True)
class Step:
    command: str  # as the README writes it (continuation lines kept)
    line: int  # 1-based line of README.md where it starts
    condition: tuple[str, bool] | None = None  # (name, wanted): run only when name's truth is wanted


def parse_quickstart(text: str) -> list[Step]:
    """The commands of README.md's quick start, in order, each with the condition its block carries."""
    lines = text.splitlines()
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise QuickstartError(f"README.md needs exactly one {BEGIN} followed by one {END} "
                              f"(found {len(begins)} and {len(ends)})")
    steps: list[Step] = []
    pending: tuple[str, bool] | None = None  # the condition the next code block gets
    last_if: str | None = None
    i = begins[0] + 1
    while i < ends[0]:
        stripped = lines[i].strip()
        marker = MARKER.fullmatch(stripped)
        fence = FENCE.match(stripped)
        if marker:
            name = marker.group(1)
            if name.startswith("if-") and name[3:] in CONDITIONS:
                last_if = name[3:]
                pending = last_if, True
            elif name == "else":
                if last_if is None:
                    raise QuickstartError(f"README.md line {i + 1}: quickstart:else without an if before it")
                pending = last_if, False
                last_if = None
            else:
                raise QuickstartError(f"README.md line {i + 1}: unknown marker quickstart:{name} (known: "
                                      f"{', '.join(f'if-{c}' for c in sorted(CONDITIONS))}, else)")
            i += 1
        elif fence:
            language = fence.group(1).lower()
            body_start, j = i + 1, i + 1
            while j < ends[0] and not FENCE.match(lines[j].strip()):
                j += 1
            if j >= ends[0]:
                raise QuickstartError(f"README.md line {i + 1}: code block not closed inside the quick start")
            if language in SHELL_LANGUAGES:
                steps += _commands(lines[body_start:j], body_start + 1, pending)
                pending = None
            i = j + 1
        else:
            i += 1
    if pending is not None:
        raise QuickstartError("README.md: a quickstart marker is followed by no code block")
    if not steps:
        raise QuickstartError("README.md: the quick start section has no sh block")
    return steps


def _commands(block: list[str], first_line: int, condition) -> list[Step]:
    """One Step per command of a code block; `\\` at a line's end continues the command on the next line."""
    steps, current, start = [], [], 0
    for offset, line in enumerate(block):
        if not current:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = first_line + offset
        current.append(line.rstrip())
        if not line.rstrip().endswith("\\"):
            steps.append(Step("\n".join(current), start, condition))
            current = []
    if current:
        raise QuickstartError(f"README.md line {start}: the command ends in a backslash with nothing after it")
    return steps


def select(steps: list[Step], facts: dict[str, bool]) -> list[Step]:
    """The steps whose condition holds on this machine."""
    return [s for s in steps if s.condition is None or facts[s.condition[0]] == s.condition[1]]


def cpu_description() -> tuple[str, dict[str, bool]]:
    """The CPU's model name and whether it has each of CPU_FLAGS, from /proc/cpuinfo's first processor."""
    model, flags = None, None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and flags is None:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown", \
        {flag: flag in (flags or set()) for flag in CPU_FLAGS}


def git(*args, cwd=ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclasses.dataclass
class Outcome:
    step: Step
    ran: str  # the command as run (after the data folder's substitution)
    code: int
    seconds: float
    tail: list[str]
    timed_out: bool = False


def run_step(step: Step, ran: str, prelude: list[str], clone: Path, env: dict, timeout: float, log: Path) -> Outcome:
    """Run one command through bash in the clone; its output goes to `log`, the last lines are kept."""
    script = "\n".join(["set -e", *prelude, "set +e", ran]) if prelude else ran
    tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    timed_out = False
    with open(log, "w", encoding="utf-8", errors="replace") as out:
        proc = subprocess.Popen(["bash", "-c", script], cwd=clone, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)

        def _kill():  # the time-out: the whole process group goes, make's and pip's children with it
            nonlocal timed_out
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the command's own process group (start_new_session)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, _kill)
        timer.start()
        try:
            for line in proc.stdout:
                out.write(line)
                tail.append(line.rstrip("\n"))
            code = proc.wait()
        finally:
            timer.cancel()
    seconds = time.monotonic() - start
    return Outcome(step, ran, 124 if timed_out else code, seconds, list(tail), timed_out)


def transcript(outcomes: list[Outcome], header: dict, todo: list[Step], stopped: str | None) -> str:
    cpu_model, flags = header["cpu"]
    lines = [
        "# Quick start transcript",
        "",
        "Written by `python docs/quickstart.py`: every command of README.md's quick start, run in order in a fresh",
        "clone (the README's own words, parsed from its `quickstart` section). Do not edit by hand; run it again.",
        "",
        f"- date: {header['date']}",
        f"- commit: {header['commit']}" + (" (the working tree had uncommitted changes: the clone has HEAD only)"
                                            if header["dirty"] else ""),
        f"- CPU: {cpu_model}, {os.cpu_count()} cores; flags: "
        + ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in flags.items()),
        f"- Python: {platform.python_version()} ({sys.executable}), {platform.platform()}",
        f"- data: {header['data']}",
        f"- time-out per command: {header['timeout']:.0f} s",
        "",
    ]
    if stopped:
        lines += [f"**Stopped: {stopped}**", ""]
    elif len(outcomes) == len(todo):
        total = sum(o.seconds for o in outcomes)
        lines += [f"**Every command succeeded** ({len(outcomes)} commands, {total:.0f} s in all).", ""]
    else:
        lines += [f"**Incomplete:** {len(outcomes)} of {len(todo)} commands run so far.", ""]
    lines += ["| # | command | exit | wall s |", "|---|---|---|---|"]
    for n, o in enumerate(outcomes, 1):
        first = o.step.command.splitlines()[0].rstrip("\\ ").replace("|", "\\|")
        lines.append(f"| {n} | `{first}` | {o.code}{' (time-out)' if o.timed_out else ''} | {o.seconds:.1f} |")
    lines.append("")
    for n, o in enumerate(outcomes, 1):
        lines += [f"## {n}. README.md line {o.step.line}", "", "```sh", o.step.command, "```", ""]
        if o.ran != o.step.command:
            lines += ["Ran as:", "", "```sh", o.ran, "```", ""]
        status = f"exit {o.code}" + (f" (killed at the {header['timeout']:.0f} s time-out)" if o.timed_out else "")
        lines += [f"{status}, {o.seconds:.1f} s. Last {len(o.tail)} lines of its output:", "", "```text",
                  *o.tail, "```", ""]
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def clean_env(data_dir: Path) -> dict:
    """This process's environment without an activated virtual environment, with the temporary data folder."""
    env = dict(os.environ)
    venv = env.pop("VIRTUAL_ENV", None)
    if venv:
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                      if Path(p).resolve() != (Path(venv) / "bin").resolve())
    env.pop("PYTHONHOME", None)
    env["TFLKIT_DATA"] = str(data_dir)
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "quickstart-transcript.md",
                        help="the transcript (default: docs/quickstart-transcript.md)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each command may take (default 1800)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone and data (default: removed "
                                                            "when every command succeeded)")
    parser.add_argument("--dry-run", action="store_true", help="list the commands README.md's quick start has "
                                                               "and exit")
    args = parser.parse_args(argv)

    shared = (ROOT.parent / "shared").resolve()
    facts = {"shared-data": (shared / "data" / "materialize.py").is_file()}
    if args.dry_run:
        try:
            steps = select(parse_quickstart((ROOT / "README.md").read_text(encoding="utf-8")), facts)
        except QuickstartError as e:
            print(f"quickstart: error: {e}", file=sys.stderr)
            return 2
        print(f"shared data: {'yes' if facts['shared-data'] else 'no'} ({shared / 'data' / 'materialize.py'})")
        for n, step in enumerate(steps, 1):
            print(f"{n:2d}. (README.md line {step.line}) {step.command}")
        return 0

    work = Path(tempfile.mkdtemp(prefix="tflkit-quickstart-"))
    clone, data_dir, logs = work / "tflkit", work / "data", work / "logs"
    data_dir.mkdir()
    logs.mkdir()
    print(f"quickstart: cloning {ROOT} into {clone}", flush=True)
    cloned = subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], capture_output=True, text=True)
    if cloned.returncode != 0:
        print(f"quickstart: error: git clone failed: {cloned.stderr.strip()}", file=sys.stderr)
        return 2
    try:  # the clone's README (HEAD's), so that the commands are the ones the clone documents
        todo = select(parse_quickstart((clone / "README.md").read_text(encoding="utf-8")), facts)
    except QuickstartError as e:
        print(f"quickstart: error: in the clone (HEAD's README.md; uncommitted changes are not in it): {e}",
              file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        return 2
    if facts["shared-data"]:
        (work / "shared").symlink_to(shared, target_is_directory=True)  # ../shared beside the clone, as here
    header = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "HEAD", cwd=clone),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "cpu": cpu_description(),
        "data": (f"the shared copy ({shared / 'data'}) unpacked into a temporary folder" if facts["shared-data"]
                 else "downloaded into a temporary folder") + f", {data_dir} ($TFLKIT_DATA)",
        "timeout": args.timeout,
    }
    env = clean_env(data_dir)
    outcomes: list[Outcome] = []
    prelude: list[str] = []
    stopped = None
    write_atomically(args.out, transcript(outcomes, header, todo, stopped))
    for n, step in enumerate(todo, 1):
        ran = step.command.replace(DATA_DIR, str(data_dir))
        print(f"quickstart: [{n}/{len(todo)}] {step.command}", flush=True)
        outcome = run_step(step, ran, prelude, clone, env, args.timeout, logs / f"{n:02d}.log")
        outcomes.append(outcome)
        print(f"quickstart: [{n}/{len(todo)}] exit {outcome.code}, {outcome.seconds:.1f} s", flush=True)
        if outcome.code != 0:
            why = f"killed at the {args.timeout:.0f} s time-out" if outcome.timed_out else f"exit {outcome.code}"
            stopped = (f"command {n} of {len(todo)} failed ({why}): `{step.command.splitlines()[0]}`; "
                       f"the commands after it were not run")
        elif STATE.match(step.command):
            prelude.append(ran)
        write_atomically(args.out, transcript(outcomes, header, todo, stopped))
        if stopped:
            break
    print(f"quickstart: transcript in {args.out}", flush=True)
    if stopped or args.keep:
        print(f"quickstart: clone, data and full logs kept in {work}", flush=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
    if stopped:
        print(f"quickstart: {stopped}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

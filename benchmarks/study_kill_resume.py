"""Kill a study midway with SIGKILL, run the same command again, and check that nothing finished was redone.

    python benchmarks/study_kill_resume.py STUDY.yaml --out DIR [--kill-when train|any] [--after N]
                                           [--results PREFIX]
                                           [-- FIRST RUN's MORE FLAGS, e.g. --allow-changes CELL / --remeasure ...]

Starts `tflkit study run STUDY --out DIR [FLAGS]` in its own process group, watches DIR/study.db, and SIGKILLs the
whole group (driver, cell workers, benchmark processes) once N stages have finished in this run and a stage of the
requested kind is running. Then it resumes as a user would, with the plain `tflkit study run STUDY --out DIR` (the
flags that redo things, --allow-changes and --remeasure, belong to the first run only), runs it to the end and
compares, stage by stage:
  - every stage finished before the kill has the same start and finish times and the same result after the resume
    (it was not run again);
  - every file row and latency row recorded before the kill is identical after it;
  - the stage that was running when the kill came is finished after the resume (redone from its start; a training
    stage continues from its last finished epoch).
Prints the verdict and writes DIR/kill_resume.{json,md} (benchmarks/harness.py's writer: what was killed when, the
stages kept, the rows compared, with the machine; `--results PREFIX` writes them elsewhere). Exit 0 when every check
holds, 1 otherwise.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import harness

NAME = "kill_resume"


def snapshot(db: Path) -> dict:
    """Every stage, file and latency row of the study, keyed, as plain values."""
    if not db.is_file():
        return {"stages": {}, "files": {}, "latency": {}}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        stages = {(r["cell"], r["stage"]): dict(r) for r in con.execute("SELECT * FROM stages")}
        files = {(r["cell"], r["recipe"]): dict(r) for r in con.execute("SELECT * FROM files")}
        latency = {(r["cell"], r["recipe"], r["target"], r["delegate"], r["threads"]): dict(r)
                   for r in con.execute("SELECT * FROM latency")}
    except sqlite3.OperationalError:  # study.db created, its tables not yet
        return {"stages": {}, "files": {}, "latency": {}}
    finally:
        con.close()
    return {"stages": stages, "files": files, "latency": latency}


def finished(stages: dict) -> dict:
    return {k: v for k, v in stages.items() if v["status"] != "running"}


def run_until_killed(command: list[str], db: Path, kind: str, after: int, log) -> dict:
    start = time.time()
    proc = subprocess.Popen(command, cwd=harness.ROOT, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    while proc.poll() is None:
        time.sleep(0.2)  # a stage can finish within a second
        stages = snapshot(db)["stages"]
        # finished by this run (a redone cell's stages keep their keys, so the finish time tells)
        new = {k for k, v in finished(stages).items() if (v["finished_at"] or 0) >= start}
        running = [k for k, v in stages.items() if v["status"] == "running"
                   and (kind == "any" or k[1].split("/")[0] == kind)]
        if len(new) >= after and running:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"killed": True, "at": time.time(), "running": [list(k) for k in running],
                    "finished_in_this_run": len(new)}
    return {"killed": False, "returncode": proc.returncode}


def compare(kept: dict, final: dict, running: list) -> dict:
    redone = [list(k) for k, v in finished(kept["stages"]).items()
              if final["stages"].get(k, {}).get("started_at") != v["started_at"]
              or final["stages"].get(k, {}).get("result") != v["result"]]
    changed_files = [list(k) for k, v in kept["files"].items() if final["files"].get(k) != v
                     and _file_was_final(kept, k)]
    changed_latency = [list(k) for k, v in kept["latency"].items() if final["latency"].get(k) != v]
    unfinished = [k for k in running if final["stages"].get(tuple(k), {}).get("status") in (None, "running")]
    return {"stages_finished_before_kill": len(finished(kept["stages"])), "redone": redone,
            "file_rows_before_kill": len(kept["files"]), "file_rows_changed": changed_files,
            "latency_rows_before_kill": len(kept["latency"]), "latency_rows_changed": changed_latency,
            "killed_stages_unfinished_after_resume": unfinished,
            "stages_after_resume": len(final["stages"]), "file_rows_after_resume": len(final["files"])}


def _file_was_final(kept: dict, key) -> bool:
    """A file row is final once its eval stage finished; before that its figures are still being filled in."""
    cell, recipe = key
    return (cell, f"eval/{recipe}") in finished(kept["stages"])


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME, out_flag="--results")
    parser.set_defaults(results=None)  # DIR/kill_resume, beside the study's own records
    parser.add_argument("study")
    parser.add_argument("--out", required=True)
    parser.add_argument("--kill-when", default="train", help="kill while a stage of this kind runs "
                        "(train, convert, eval, bench_host) or any")
    parser.add_argument("--after", type=int, default=1, help="stages finished in this run before the kill")
    args, extra = parser.parse_known_args(argv)  # the rest: more `tflkit study run` flags, after --
    extra = [a for a in extra if a != "--"]
    out = Path(args.out)
    results = harness.Results(NAME, args.results or out / NAME, argv)
    db = out / "study.db"
    resume = harness.tflkit("study", "run", args.study, "--out", out)
    command = [*resume, *extra]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "kill_resume.log", "a") as log:
        print(f"run 1: {' '.join(command)}", flush=True)
        kill = run_until_killed(command, db, args.kill_when, args.after, log)
        if not kill["killed"]:
            log.flush()
            last = (out / "kill_resume.log").read_text().strip().splitlines()[-1:] or [""]
            print(f"the study ended (exit {kill['returncode']}) before a {args.kill_when} stage could be killed: "
                  f"{last[0]}")
            return 1
        kept = snapshot(db)
        print(f"SIGKILL after {kill['finished_in_this_run']} stages of this run, while running: "
              + ", ".join("/".join(k) for k in kill["running"]), flush=True)
        print(f"run 2 (resume): {' '.join(resume)}", flush=True)
        resume_s, done = harness.run(resume, check=False, stdout=log, stderr=subprocess.STDOUT)
    final = snapshot(db)
    checks = compare(kept, final, kill["running"])
    ok = (done.returncode == 0 and not checks["redone"] and not checks["file_rows_changed"]
          and not checks["latency_rows_changed"] and not checks["killed_stages_unfinished_after_resume"])
    verdict = (f"resume: exit {done.returncode} in {resume_s:.0f} s; {checks['stages_finished_before_kill']} stages "
               f"finished before the kill, {len(checks['redone'])} redone; {checks['file_rows_before_kill']} file rows "
               f"and {checks['latency_rows_before_kill']} latency rows before, {len(checks['file_rows_changed'])} and "
               f"{len(checks['latency_rows_changed'])} changed; killed stage(s) finished after the resume: "
               f"{'yes' if not checks['killed_stages_unfinished_after_resume'] else 'NO'}")
    markdown = "\n".join([
        "# A study killed midway and resumed: nothing finished was redone", "",
        f"First run: `{' '.join(map(str, command))}`, SIGKILLed (the whole process group) after "
        f"{kill['finished_in_this_run']} stages of this run, while running: "
        + ", ".join("/".join(k) for k in kill["running"]) + f". Resume: `{' '.join(map(str, resume))}`.", "",
        f"**{'OK' if ok else 'FAILED'}**: {verdict}."])
    results.write(markdown, summary={"ok": ok, "resume_exit": done.returncode, "resume_s": resume_s, **checks},
                  raw={"kill": kill, "first_command": command, "resume_command": resume})
    print(verdict)
    print("OK" if ok else "FAILED", f"(details: {results.json_path})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`tflkit tune`: a hyperparameter and augmentation search (tflkit.api.tune, tflkit.tune)."""

from __future__ import annotations

from tflkit import api
from tflkit.cli.common import JSON_HELP, Reply
from tflkit.core.config import add_flags, flag_values
from tflkit.core.errors import UsageError
from tflkit.core.trainconfig import TrainConfig
from tflkit.tune.objective import KERAS, Objective
from tflkit.tune.report import best_trial
from tflkit.tune.search import TUNE_EPOCHS, count_states


def cmd_tune(args) -> Reply:
    train = flag_values(args, TrainConfig)
    for key in ("model", "dataset"):
        if key not in train:
            raise UsageError(f"--{key} is required")
    objective = Objective(target=args.objective, max_latency_ms=args.max_latency_ms, max_size_mb=args.max_size_mb)
    study = api.tune(train.pop("model"), train.pop("dataset"), args.out, trials=args.trials, space=args.space,
                     storage=args.storage, study_name=args.study_name, prune=args.prune, objective=objective,
                     **train)
    best = best_trial(study)
    states = count_states(study)
    print(f"trials: {', '.join(f'{n} {k.lower()}' for k, n in sorted(states.items()))}")
    if best is None:
        print("best: none (no complete trial within the budget)")
    else:
        print(f"best: trial {best.number}  {100 * best.value:.2f}%  -> {args.out}/best.yaml "
              f"(tflkit train --config {args.out}/best.yaml --out RUN)")
    result = {"trials": states, "best_trial": None if best is None else best.number,
              "best_value": None if best is None else best.value, "best_params": None if best is None else best.params}
    return Reply("tune", [result])


def register(sub) -> None:
    p = sub.add_parser("tune", help="search hyperparameters and augmentation (Optuna), scored on the Keras model "
                                    "or a recipe's .tflite",
                       description="Each trial is a run directory under OUT/trials/. The search lives in "
                                   "OUT/tune.db (SQLite): rerun the same command to resume a killed search, or run "
                                   "it on several machines with one --storage URL to share the trials.")
    p.add_argument("--trials", type=int, default=12,
                   help="trials to finish (default 12). A pruned trial counts, as in Optuna's n_trials; a failed or "
                        "killed one does not, and a killed trial's parameters run again, so a rerun of a killed "
                        "search ends with N finished trials")
    p.add_argument("--out", required=True, help="output directory: tune.db, trials/, best.yaml, trials.csv, report")
    p.add_argument("--space", help="YAML search space laid over the model's default (see tflkit/tune/space.py)")
    p.add_argument("--objective", default=KERAS,
                   help="keras (val top-1 of the Keras model, default) or a recipe such as static_wi8_ai8 (val "
                        "top-1 of its .tflite, converted after each trial)")
    p.add_argument("--max-latency-ms", type=float, help="budget: host median latency of the .tflite, 1 thread")
    p.add_argument("--max-size-mb", type=float, help="budget: .tflite file size in MB (1e6 bytes)")
    p.add_argument("--storage", help="Optuna RDB URL shared by workers (default sqlite:///OUT/tune.db), "
                                     "e.g. postgresql://user@host/db (through psycopg 3, from the tune extra)")
    p.add_argument("--study-name", help="default tune-<model>-<dataset>")
    p.add_argument("--no-prune", dest="prune", action="store_false",
                   help="run every trial to its last epoch (by default the median pruner stops a trial whose val "
                        "top-1 is below the median of earlier trials at the same epoch, once 5 trials have finished "
                        "and only in the second half of its epochs)")
    # every trial's training settings: `tflkit train`'s flags (the space's keys are sampled over them); --seed
    # seeds the sampler too
    add_flags(p, TrainConfig, helps={"epochs": f"epochs per trial (default {TUNE_EPOCHS})",
                                     "pretrained": "as for tflkit train; adds fine-tune settings to the space"})
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_tune)

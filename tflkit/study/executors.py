"""Where cells run: worker processes on this machine (`local`), or Ray tasks on a cluster (`ray`).

Both run the same worker (tflkit.study.worker.run_cell_process, in a process of its own through
tflkit.core.isolate) and hand its stage records to the driver as they happen, which records them; only the driver
writes study.db. The Ray path needs `--out` on a path every node shares.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tflkit.core import isolate
from tflkit.core.errors import TflkitError, UsageError
from tflkit.study.spec import cell_dir
from tflkit.study.worker import run_cell_process


def thread_budget(jobs: int) -> int:
    """Each of `jobs` parallel cells' share of this machine's cores."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_worker(out_dir, cell_id: str, done: set[str], threads: int | None, on_record,
               node: str | None = None) -> str | None:
    """Run one cell's worker to the end, calling `on_record` for each record as it arrives. Returns None when it
    finished, else why it did not (one line: the error it raised, or how its process died and the last error line of
    its log). The worker's own output goes to cells/<id>/worker.log; it dies with this process. `node`: the Ray node
    it runs on, recorded in every stage's provenance."""
    log_path = cell_dir(out_dir, cell_id) / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    recording = []  # an error of the driver's own (study.db) stops the study; one the cell raised fails the cell

    def record(value) -> None:
        try:
            on_record(value)
        except BaseException as exc:
            recording.append(exc)
            raise

    with open(log_path, "a") as log_file:
        try:
            isolate.call(run_cell_process, str(out_dir), cell_id, sorted(done), threads, node, on_message=record,
                         stdout=log_file, stderr=log_file, env={"PYTHONUNBUFFERED": "1"})
        except isolate.Crashed as exc:
            error = _last_error(log_path)
            return f"worker {isolate.describe_exit(exc.code)}" + (f": {error}" if error else "")
        except Exception as exc:  # noqa: BLE001 - whatever the cell raised fails that cell, not the study
            if recording:
                raise
            text = (str(exc).strip().splitlines() or [""])[0]
            return (text if isinstance(exc, TflkitError) else f"{type(exc).__name__}: {text}".rstrip(": "))[:300]
    return None


def _last_error(log_path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()]
        return (errors or lines or [""])[-1][:300]
    return ""


def run_local(todo, out_dir, recorder, jobs: int, log) -> None:
    threads = thread_budget(jobs) if jobs > 1 else None
    recipes = json.loads((Path(out_dir) / "study.spec.json").read_text())["recipes"]
    lock = threading.Lock()

    def say(line: str) -> None:  # whole lines from parallel cells, never two on one line
        with lock:
            log(line)

    def one(item):
        cell, done = item
        say(f"run      {cell.id}" + (f"  (resuming: {len(done)} stages done)" if done else ""))
        failure = run_worker(out_dir, cell.id, done, threads, recorder)
        if failure:
            recorder.worker_failed(cell, failure, recipes)

    if jobs == 1:
        for item in todo:
            one(item)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, item) for item in todo]:
            future.result()


# A cell whose Ray worker process or node is lost (the node died, was pre-empted or ran out of memory) runs again,
# from the stages the driver has recorded as finished (its training from the last finished epoch), at most this many
# more times; an error in tflkit's own code or a failed stage is a result and is not retried.
RAY_RETRIES = 2


def run_ray(todo, out_dir, spec, recorder, address: str | None, log, retries: int = RAY_RETRIES) -> None:
    try:
        import ray
        from ray.util.queue import Empty, Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'tflkit[ray]'") from None

    started_here = not ray.is_initialized()
    if started_here:
        _check_reachable(address)
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise TflkitError(f"cannot reach the Ray cluster {address or '(local)'}: {str(exc).splitlines()[0]}") \
                from None
    try:
        # The records' queue lives on the driver's node: a worker node that dies takes none of them with it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        task = ray.remote(num_cpus=spec.resources.num_cpus, num_gpus=spec.resources.num_gpus,
                          max_retries=0)(_ray_cell)  # retried here, with the finished stages known now
        refs, attempts = {}, {}

        def submit(cell, done) -> None:
            attempts[cell.id] = attempts.get(cell.id, 0) + 1
            log(f"ray      {cell.id}" + (f"  (resuming: {len(done)} stages done)" if done else "")
                + (f"  (attempt {attempts[cell.id]})" if attempts[cell.id] > 1 else ""))
            refs[task.remote(str(out_dir), cell.id, sorted(done), queue)] = cell

        def drain(block: bool):
            while True:
                try:
                    recorder(queue.get(block=block, timeout=0.2) if block else queue.get_nowait())
                except Empty:
                    return
                block = False

        for cell, done in todo:
            submit(cell, done)
        pending = list(refs)
        while pending:
            finished, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            drain(block=False)
            for ref in finished:
                cell = refs.pop(ref)
                try:
                    failure = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # tflkit's own code raised inside the task
                    failure = f"its Ray task raised {str(exc).strip().splitlines()[-1][:250]}"
                except ray.exceptions.RayError as exc:  # the worker process or its node is gone
                    drain(block=True)  # whatever it sent before it went
                    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
                    if attempts[cell.id] <= retries:
                        log(f"study    {cell.id}: lost its Ray worker ({reason}); running it again")
                        submit(cell, recorder.finished(cell))
                        pending = list(refs)
                        continue
                    failure = f"lost its Ray worker {attempts[cell.id]} times, last: {reason}"
                drain(block=False)
                if failure:
                    recorder.worker_failed(cell, failure, spec.recipes)
        drain(block=False)
    finally:
        if started_here:
            ray.shutdown()


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """One line within seconds when the cluster's address does not answer: ray.init itself retries an unreachable
    GCS for minutes (measured: still retrying after 200 s). `auto` means RAY_ADDRESS when set, else Ray's own
    lookup of a cluster started on this machine (which fails fast by itself)."""
    import socket

    if address == "auto":
        address = os.environ.get("RAY_ADDRESS")
    if not address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not HOST:PORT: Ray's own error follows
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise TflkitError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} (is `ray start` "
                          f"running there, and is the port open?)") from None


def _ray_cell(out_dir: str, cell_id: str, done: list[str], queue) -> str | None:
    """A Ray task: the same worker process as the local executor (run_worker's answer, None or why it failed); its
    records go back through a Ray queue. Its thread budget is the task's CPU share."""
    import ray

    context = ray.get_runtime_context()
    cpus = context.get_assigned_resources().get("CPU")
    threads = max(1, int(cpus)) if cpus else None
    return run_worker(out_dir, cell_id, set(done), threads, queue.put, node=context.get_node_id())

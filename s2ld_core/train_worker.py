"""Training of a project model in its own process, with progress as JSON lines on stdout.

Command line (every option is in ``--help``)::

    python -m s2ld_core.train_worker --project P --source consensus --epochs 10 \\
        --init active --device auto [--out DIR]

The process prints one JSON object per line on stdout and nothing else there (logging and
anything a library prints go to stderr). Every object has an ``"event"`` key:

- ``device``: ``requested``, ``device``, ``fallback`` (bool), ``message``. Sent first, and
  again when a CUDA failure moves training to the CPU.
- ``start``: ``version``, ``parent``, ``init``, ``source``, ``n_train``, ``n_val``,
  ``epochs``, ``batches``, ``device``, ``message``.
- ``batch``: ``epoch``, ``epochs``, ``batch``, ``batches``, ``loss``, ``lr``, ``elapsed_s``, ``eta_s``.
- ``epoch``: ``epoch``, ``epochs``, ``loss``, ``val_nme``, ``best_val_nme``, ``lr``,
  ``elapsed_s``, ``eta_s``.
- ``done`` (last): ``version``, ``parent``, ``checkpoint`` (registry folder), ``stopped_by``,
  ``best_epoch``, ``best_val_nme``, ``elapsed_s``, ``comparison`` (see
  :func:`s2ld_core.assist.compare_models`).
- ``cancelled`` (last): ``elapsed_s``, ``message``.
- ``error`` (last): ``kind`` ("out_of_memory", "data", "project" or "crash"), ``message``,
  ``traceback``.

``eta_s`` estimates the seconds left, assuming every epoch runs. Losses, NME and time follow
:class:`s2ld_core.train.TrainEvent`; NME is a fraction of the inter-ocular distance.

Control: the parent writes ``stop`` or ``cancel`` and a newline on the process's stdin. Stop
ends training early, keeps the best weights so far and registers them as a new version.
Cancel discards the run and leaves the registry unchanged; so does end-of-file on stdin
(the parent went away) unless ``--ignore-stdin-eof`` is given. A finished run is registered
in the project (not activated) with its card, whose parent is the active model.

Exit status: 0 after ``done`` or ``cancelled``, 1 after ``error``. A process killed from
outside exits without a last event; :func:`exit_event` builds the error for the parent.

For tests, ``ALRF_TEST_CRASH_AFTER_EPOCH=N`` makes the process crash right after epoch N:
``ALRF_TEST_CRASH_KIND=exit`` (default) ends it with status 70 and no error event, ``raise``
raises an exception, ``oom`` raises MemoryError.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

#: Event kinds that end a run; exactly one of them is the last line of a run that was not killed.
FINAL_EVENTS = ("done", "cancelled", "error")

#: Exit status of a crash requested by ``ALRF_TEST_CRASH_AFTER_EPOCH``.
TEST_CRASH_STATUS = 70


@dataclass
class TrainRequest:
    """Options of one training run; :meth:`to_args` gives the worker's command-line arguments.

    Attributes:
        project: project folder.
        source: "consensus", "annotator" or "all" (see :func:`s2ld_core.assist.human_labels`).
        annotator: the annotator for the source "annotator".
        min_annotators: finished annotators an image needs for the source "consensus".
        epochs: number of epochs.
        init: "active" (fine-tune the active model) or "scratch".
        device: "auto", "cpu", "cuda" or "cuda:N".
        out: folder for the checkpoint before it is copied into the registry; a temporary
            folder, removed afterwards, when None.
        threads: CPU threads for torch; None leaves torch's default.
        batch_size: faces per batch.
        lr: peak learning rate; None picks 1e-3 for "active" and 3e-3 for "scratch".
        val_fraction: share of images in the project's fixed validation split.
        version: registry name of the new model; None builds one from the date and time.
        widths: channel widths of a network trained from scratch; None keeps the default.
    """

    project: str
    source: str = "consensus"
    annotator: str | None = None
    min_annotators: int = 2
    epochs: int = 10
    init: str = "active"
    device: str = "auto"
    out: str | None = None
    threads: int | None = None
    batch_size: int = 64
    lr: float | None = None
    val_fraction: float = 0.15
    version: str | None = None
    widths: tuple[int, int, int, int] | None = None

    def to_args(self) -> list[str]:
        args = ["--project", str(self.project), "--source", self.source, "--min-annotators", str(self.min_annotators),
                "--epochs", str(self.epochs), "--init", self.init, "--device", self.device,
                "--batch-size", str(self.batch_size), "--val-fraction", str(self.val_fraction)]
        optional = {"--annotator": self.annotator, "--out": self.out, "--threads": self.threads, "--lr": self.lr,
                    "--version": self.version,
                    "--widths": ",".join(str(w) for w in self.widths) if self.widths else None}
        for flag, value in optional.items():
            if value is not None:
                args += [flag, str(value)]
        return args


# ---------------------------------------------------------------------- parent side


def worker_command(request: TrainRequest, python: str | None = None) -> list[str]:
    """Return the command line that runs ``request`` in a new Python process (program first)."""
    return [python or sys.executable, "-u", "-m", "s2ld_core.train_worker", *request.to_args()]


def worker_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment for the worker: ``base`` (default: this process's) with the package on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def parse_event(line: str | bytes) -> dict | None:
    """Decode one stdout line of the worker; None for a blank line.

    A line that is not a JSON object (which the worker never writes on purpose) becomes
    ``{"event": "log", "message": line}`` so that a parent never fails on it.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {"event": "log", "message": line}
    if not isinstance(event, dict) or "event" not in event:
        return {"event": "log", "message": line}
    return event


def exit_event(returncode: int, final_event: str | None, stderr_tail: str = "") -> dict | None:
    """Return the error event a parent should show when the worker ended without a last event.

    ``final_event`` is the kind of the last of :data:`FINAL_EVENTS` received, or None. Returns
    None when the worker reported its own end.
    """
    if final_event in FINAL_EVENTS:
        return None
    if returncode == 0:
        message = "the training process ended without reporting a result"
    elif returncode < 0:
        message = f"the training process was killed by signal {-returncode}"
    else:
        message = f"the training process crashed with exit status {returncode}"
    if returncode in (-9, 137):
        message += " (possibly out of memory)"
    tail = stderr_tail.strip()
    if tail:
        message += f"; its last output: {tail.splitlines()[-1]}"
    return {"event": "error", "kind": "crash", "message": message, "returncode": returncode, "traceback": tail}


class TrainingProcess:
    """Runs the worker with :mod:`subprocess` and collects its events on a reader thread.

    The GUI does the same with QProcess: :func:`worker_command` and :func:`worker_env` for the
    start, :func:`parse_event` per stdout line, "stop\\n" or "cancel\\n" on stdin, and
    :func:`exit_event` when the process finishes. After the worker's own events the queue
    receives the result of :func:`exit_event` (when it is not None) and then
    ``{"event": "exit", "returncode": int}``.
    """

    def __init__(self, request: TrainRequest, env: dict[str, str] | None = None) -> None:
        self.command = worker_command(request)
        self.env = worker_env(env)
        self.events: queue.Queue[dict] = queue.Queue()
        self.final_event: str | None = None
        self._stderr: deque[str] = deque(maxlen=40)
        self._process: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> "TrainingProcess":
        self._process = subprocess.Popen(
            self.command, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1,
        )
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()
        log.info("Started training process %d: %s", self._process.pid, " ".join(self.command))
        return self

    def _read_stderr(self) -> None:
        for line in self._process.stderr:
            self._stderr.append(line.rstrip())

    def _read_stdout(self) -> None:
        for line in self._process.stdout:
            event = parse_event(line)
            if event is None:
                continue
            if event["event"] in FINAL_EVENTS:
                self.final_event = event["event"]
            self.events.put(event)
        returncode = self._process.wait()
        self._threads[1].join(timeout=5)
        extra = exit_event(returncode, self.final_event, self.stderr_tail)
        if extra is not None:
            self.final_event = "error"
            self.events.put(extra)
        self.events.put({"event": "exit", "returncode": returncode})

    @property
    def stderr_tail(self) -> str:
        """The last lines the worker wrote to stderr (its log)."""
        return "\n".join(self._stderr)

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def _send(self, command: str) -> None:
        try:
            self._process.stdin.write(command + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            log.info("Training process already ended; %r not sent", command)

    def stop(self) -> None:
        """Ask the worker to end early and keep the best weights as a new version."""
        self._send("stop")

    def cancel(self) -> None:
        """Ask the worker to discard the run."""
        self._send("cancel")

    def kill(self) -> None:
        """End the worker at once; nothing is registered unless it had already finished."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def poll(self) -> list[dict]:
        """Return the events received since the last call, without waiting."""
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def iter_events(self, timeout: float | None = None) -> Iterator[dict]:
        """Yield events until the final ``exit`` event; raise TimeoutError after ``timeout`` seconds of silence."""
        while True:
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no event from the training process for {timeout} s") from None
            yield event
            if event["event"] == "exit":
                return

    def wait(self, timeout: float | None = None) -> int:
        return self._process.wait(timeout)

    def __enter__(self) -> "TrainingProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
        if self._process is not None:
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
                stream.close()


# ---------------------------------------------------------------------- worker side


class _EitherSet:
    """A cancel token for :func:`s2ld_core.train.train` that is set when stop or cancel is."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def read_commands(stream, stop: threading.Event, cancel: threading.Event, cancel_on_eof: bool = True) -> None:
    """Read "stop" and "cancel" lines from ``stream`` and set the matching event; runs on its own thread."""
    for line in stream:
        command = line.strip().lower()
        if command == "stop":
            log.info("Stop requested: training ends early and keeps the best weights")
            stop.set()
        elif command == "cancel":
            log.info("Cancel requested: the run is discarded")
            cancel.set()
        elif command:
            log.warning("Ignored unknown command %r on stdin; send 'stop' or 'cancel'", command)
    if cancel_on_eof:
        log.info("stdin closed: the run is cancelled")
        cancel.set()


def _crash_if_requested(epoch: int) -> None:
    after = os.environ.get("ALRF_TEST_CRASH_AFTER_EPOCH")
    if not after or epoch < int(after):
        return
    kind = os.environ.get("ALRF_TEST_CRASH_KIND", "exit")
    log.error("Crashing after epoch %d as ALRF_TEST_CRASH_AFTER_EPOCH requests (%s)", epoch, kind)
    if kind == "raise":
        raise RuntimeError(f"test crash after epoch {epoch} (ALRF_TEST_CRASH_AFTER_EPOCH={after})")
    if kind == "oom":
        raise MemoryError(f"test out-of-memory after epoch {epoch} (ALRF_TEST_CRASH_AFTER_EPOCH={after})")
    os._exit(TEST_CRASH_STATUS)


def resolve_device(requested: str) -> tuple[str, str]:
    """Return the device to train on and a message for the ``device`` event.

    "auto" takes CUDA when torch finds a GPU that accepts a small tensor, else the CPU. A
    request for CUDA falls back to the CPU when CUDA is missing or fails, and the message states that.
    """
    import torch

    if requested == "cpu":
        return "cpu", "training on the CPU"
    if not requested.startswith("cuda") and requested != "auto":
        raise ValueError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")
    target = "cuda" if requested == "auto" else requested
    if not torch.cuda.is_available():
        if requested == "auto":
            return "cpu", "CUDA is not available; training on the CPU"
        return "cpu", f"{requested} was requested but CUDA is not available in this torch build or machine; falling back to the CPU"
    try:
        torch.zeros(1, device=target).add_(1).cpu()
    except (RuntimeError, AssertionError) as exc:
        return "cpu", f"{target} failed to start ({exc}); falling back to the CPU"
    return target, f"training on {target} ({torch.cuda.get_device_name(torch.device(target))})"


def _default_version(project, init: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"g2-{'ft' if init == 'active' else 'scratch'}-{stamp}"
    taken = {m["version"] for m in project.models()}
    version, n = base, 2
    while version in taken:
        version, n = f"{base}-{n}", n + 1
    return version


def _eta(elapsed: float, done_fraction: float) -> float | None:
    if done_fraction <= 0:
        return None
    return max(0.0, elapsed / done_fraction * (1.0 - done_fraction))


def _train_on(device: str, samples, val_samples, config, initial_state, either: _EitherSet, emit: Callable[[dict], None]):
    """Run :func:`s2ld_core.train.train` on ``device``, emitting progress; return the last TrainEvent."""
    from s2ld_core.train import train

    config.device = device
    last = None
    for event in train(samples, config, val_samples=val_samples, cancel=either, initial_state=initial_state):
        last = event
        if event.kind == "batch":
            fraction = ((event.epoch - 1) * event.batches + event.batch) / max(1, event.batches * event.epochs)
            emit({"event": "batch", "epoch": event.epoch, "epochs": event.epochs, "batch": event.batch,
                  "batches": event.batches, "loss": event.loss, "lr": event.lr, "elapsed_s": event.elapsed_s,
                  "eta_s": _eta(event.elapsed_s, fraction)})
        elif event.kind == "epoch":
            emit({"event": "epoch", "epoch": event.epoch, "epochs": event.epochs, "loss": event.loss,
                  "val_nme": event.val_nme, "best_val_nme": event.best_val_nme, "lr": event.lr,
                  "elapsed_s": event.elapsed_s, "eta_s": _eta(event.elapsed_s, event.epoch / event.epochs)})
            _crash_if_requested(event.epoch)
    return last


def run(args: argparse.Namespace, emit: Callable[[dict], None], stop: threading.Event, cancel: threading.Event) -> int:
    """Carry out one training run and report it through ``emit``; return the exit status."""
    import torch

    from s2ld_core.assist import compare_models, training_samples, validation_split
    from s2ld_core.checkpoint import load_checkpoint, save_checkpoint
    from s2ld_core.model import G2Config
    from s2ld_core.store import Project
    from s2ld_core.train import TrainConfig, result_card

    start_time = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, message = resolve_device(args.device)
    emit({"event": "device", "requested": args.device, "device": device,
          "fallback": args.device not in ("auto", "cpu") and device == "cpu", "message": message})

    project = Project.open(args.project)
    try:
        parent = project.active_model()
        initial_state, model_config, sigma = None, G2Config(), None
        if args.init == "active":
            if parent is None:
                emit({"event": "error", "kind": "data", "traceback": "",
                      "message": f"project {project.root} has no active model to start from; pre-label with a model first or train from scratch"})
                return 1
            model, card = load_checkpoint(project.model_path(parent), "cpu")
            initial_state, model_config = model.state_dict(), model.config
            sigma = card.heatmap.get("sigma")
        elif args.widths:
            model_config = G2Config(widths=G2Config.parse_widths(args.widths))

        split = validation_split(project, args.val_fraction)
        label_args = dict(source=args.source, annotator=args.annotator, min_annotators=args.min_annotators)
        samples = training_samples(project, image_ids=split.train, **label_args)
        val_samples = training_samples(project, image_ids=split.validation, **label_args)
        if not samples or not val_samples:
            emit({"event": "error", "kind": "data", "traceback": "",
                  "message": f"label source {args.source!r} gives {len(samples)} training and {len(val_samples)} validation faces "
                             f"in {project.root}; both must be at least 1, so finish more labels or choose another source"})
            return 1

        version = args.version or _default_version(project, args.init)
        if version in {m["version"] for m in project.models()}:
            emit({"event": "error", "kind": "data", "traceback": "",
                  "message": f"model version {version!r} is already registered in {project.root}; choose another name"})
            return 1
        lr = args.lr or (1e-3 if args.init == "active" else 3e-3)
        config = TrainConfig(model=model_config, epochs=args.epochs, batch_size=args.batch_size, lr=lr,
                             warmup_epochs=min(2.0, 0.2 * args.epochs), patience=max(args.epochs, 1),
                             threads=args.threads, batch_event_every=1)
        if sigma:
            config.sigma = float(sigma)
        emit({"event": "start", "version": version, "parent": parent, "init": args.init, "source": args.source,
              "n_train": len(samples), "n_val": len(val_samples), "epochs": args.epochs,
              "batches": max(1, len(samples) // args.batch_size), "device": device,
              "message": f"{len(samples)} training and {len(val_samples)} validation faces on {device}"})

        either = _EitherSet(stop, cancel)
        try:
            last = _train_on(device, samples, val_samples, config, initial_state, either, emit)
        except (RuntimeError, MemoryError) as exc:
            if device == "cpu" or either.is_set():
                raise
            log.exception("Training on %s failed", device)
            device = "cpu"
            emit({"event": "device", "requested": args.device, "device": "cpu", "fallback": True,
                  "message": f"training on CUDA failed ({exc}); starting again on the CPU"})
            last = _train_on(device, samples, val_samples, config, initial_state, either, emit)

        if cancel.is_set():
            emit({"event": "cancelled", "elapsed_s": time.perf_counter() - start_time,
                  "message": "training cancelled; nothing was registered"})
            return 0
        result = last.result
        stopped_by = "stop" if stop.is_set() else result.stopped_by

        out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="alrf-train-"))
        folder = out_root / version
        try:
            card = result_card(result, config, version, sources=[f"project:{project.name}:{args.source}"], parent=parent)
            card.training.update({"stopped_by": stopped_by, "init": args.init, "validation_fraction": args.val_fraction})
            save_checkpoint(result.model, card, folder)
            versions = [parent, version] if parent else [version]
            comparison = compare_models(project, versions, split.validation, checkpoints={version: str(folder)},
                                        device=device, **label_args)
            card.metrics["project_validation"] = {v: {k: m[k] for k in ("nme", "median", "failure_rate", "auc", "n")}
                                                  for v, m in comparison["models"].items()}
            save_checkpoint(result.model, card, folder)
            if cancel.is_set():
                emit({"event": "cancelled", "elapsed_s": time.perf_counter() - start_time,
                      "message": "training cancelled before registration; nothing was registered"})
                return 0
            registered = project.register_model(version, folder, card.to_json(), parent=parent)
        finally:
            if not args.out:
                shutil.rmtree(out_root, ignore_errors=True)

        emit({"event": "done", "version": version, "parent": parent, "checkpoint": str(registered),
              "stopped_by": stopped_by, "best_epoch": result.best_epoch, "best_val_nme": result.best_val_nme,
              "elapsed_s": time.perf_counter() - start_time, "comparison": comparison})
        return 0
    finally:
        project.close()


def _json_safe(value):
    """Replace NaN and infinities by None, recursively, so the line is strict JSON."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _error_kind(exc: BaseException) -> str:
    from s2ld_core.store import StoreError
    from s2ld_core.training_data import DataError

    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return "out_of_memory"
    if isinstance(exc, StoreError):
        return "project"
    if isinstance(exc, (DataError, ValueError)):
        return "data"
    return "crash"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m s2ld_core.train_worker",
        description="Train a G2 model on a project's human labels and register it; progress as JSON lines on stdout. "
                    "Write 'stop' or 'cancel' on stdin to end the run early.")
    parser.add_argument("--project", required=True, help="project folder")
    parser.add_argument("--source", default="consensus", choices=("consensus", "annotator", "all"),
                        help="labels to train on (default: consensus)")
    parser.add_argument("--annotator", help="annotator whose labels the source 'annotator' takes")
    parser.add_argument("--min-annotators", type=int, default=2,
                        help="finished annotators an image needs to enter the consensus (default: 2)")
    parser.add_argument("--epochs", type=int, default=10, help="number of epochs (default: 10)")
    parser.add_argument("--init", default="active", choices=("active", "scratch"),
                        help="start from the active model's weights or from random weights (default: active)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--out", help="folder for the new checkpoint before it is copied into the registry "
                                      "(default: a temporary folder, removed afterwards)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=64, help="faces per batch (default: 64)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: 1e-3 with --init active, 3e-3 from scratch)")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="share of images in the project's fixed validation split (default: 0.15)")
    parser.add_argument("--version", help="registry name of the new model (default: g2-ft-<date>-<time>)")
    parser.add_argument("--widths", help="four comma-separated channel widths for --init scratch (default: the G2 default)")
    parser.add_argument("--ignore-stdin-eof", action="store_true",
                        help="keep training when stdin is closed (by default that cancels the run)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Events own the real stdout; everything else printed, by Python or C code, goes to stderr.
    events_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lock = threading.Lock()

    def emit(event: dict) -> None:
        event = {"event": event["event"], "time": time.time(), **{k: v for k, v in event.items() if k != "event"}}
        with lock:
            events_out.write(json.dumps(_json_safe(event), allow_nan=False) + "\n")
            events_out.flush()

    stop, cancel = threading.Event(), threading.Event()
    threading.Thread(target=read_commands, args=(sys.stdin, stop, cancel, not args.ignore_stdin_eof), daemon=True).start()
    try:
        return run(args, emit, stop, cancel)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes an error event before exiting
        log.exception("Training failed")
        kind = _error_kind(exc)
        message = f"{type(exc).__name__}: {exc}"
        if kind == "out_of_memory":
            message += "; lower --batch-size or train on another device"
        emit({"event": "error", "kind": kind, "message": message, "traceback": traceback.format_exc()})
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

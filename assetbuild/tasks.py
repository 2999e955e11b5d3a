"""Assets as doit tasks, and running them with doit's threaded runner.

Each asset is one task named ``assets:<target>`` (characters doit would misread percent-encoded,
see ``doit_name``): its action asks the shared ``Builder`` to build it,
its ``uptodate`` asks the builder (which consults the lock, so doit's own database is only an
accelerator), and ``task_dep`` orders it after the assets it reads. doit facts that shape this
(design-notes.md): threads, not processes, so every task shares one client; output capture off,
because doit's capture swaps the process-global ``sys.stdout`` per task and corrupts output across
threads; config files ignored, so a host repo's ``[tool.doit]`` cannot change our behaviour.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from doit.cmd_base import TaskLoader2
from doit.doit_cmd import DoitMain
from doit.exceptions import TaskFailed, UnmetDependency
from doit.loader import generate_tasks

from . import doitdb
from .builder import Builder, Cancelled, Outcomes
from .errors import AssetError, ModifiedFileError
from .events import BuildEvents, Failure, Summary
from .fsutil import make_state_dir

PREFIX = "assets"
# Characters of a target kept as they are in its doit task name. Everything else is percent-encoded:
# doit reads ``*``, ``?`` and ``[`` in a task name on its command line as a wildcard (building other
# tasks, or only some), ``name=value`` as a variable assignment (building nothing) and ``:`` as a
# subtask separator, though all of them are legal in file names.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,@~")


def doit_name(target: str) -> str:
    """``target`` as the name of its doit subtask: ``sprites/hero.png`` stays, ``a*.png`` is ``a%2A.png``."""
    if all(char in _SAFE for char in target):
        return target
    return "".join(char if char in _SAFE else "".join(f"%{byte:02X}" for byte in char.encode("utf-8",
                                                                                               "surrogateescape"))
                   for char in target)


def task_name(target: str) -> str:
    return f"{PREFIX}:{doit_name(target)}"


def _target_of(task_name_: str) -> str:
    name = task_name_.split(":", 1)[1] if ":" in task_name_ else task_name_
    return unquote(name, errors="surrogateescape") if "%" in name else name


def task_dicts(builder: Builder, targets: list[str] | None = None, *,
               only_stale: bool = False) -> list[dict[str, Any]]:
    """One doit task dict per asset (default: every asset), in dependency order.

    ``only_stale``: ``targets`` are exactly the assets the plan found stale (``assetbuild run``). Their
    freshness is not asked again (the builder checks each one as it starts), and an input that is not
    among them is fresh, so it needs no task to wait for. Plain doit (dodo.py) gets every asset, each
    with an ``uptodate`` that consults the lock.
    """
    chosen = targets if targets is not None else list(builder.project.assets)
    included = set(chosen)
    result = []
    for target in chosen:
        asset = builder.project.assets[target]
        result.append({
            "name": doit_name(target),
            "basename": PREFIX,
            "actions": [(_action, [builder, target])],
            "uptodate": [] if only_stale else [_uptodate(builder, target)],
            "task_dep": [task_name(up) for up in asset.upstream if not only_stale or up in included],
            "targets": [str(asset.path)],
            "doc": asset.params.get("prompt") or f"derived from {asset.source}",
            "io": {"capture": False},
            "verbosity": 2,
        })
    return result


def _uptodate(builder: Builder, target: str) -> Any:
    def check() -> bool:
        return builder.is_fresh(target)

    return check


def _action(builder: Builder, target: str) -> TaskFailed | None:
    try:
        builder.build(target)  # the builder keeps the outcome or the error, for the Reporter
    except AssetError as exc:
        return TaskFailed(exc.reason)
    return None


class _Loader(TaskLoader2):
    def __init__(self, tasks: list[dict[str, Any]], config: dict[str, Any]) -> None:
        super().__init__()
        self._tasks = tasks
        self._config = config

    def setup(self, opt_values: dict[str, Any]) -> None:
        pass

    def load_doit_config(self) -> dict[str, Any]:
        return self._config

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Any]:
        return list(generate_tasks(PREFIX, (t for t in self._tasks)))[1:]  # [0] is the group task


class _AssetbuildDoit(DoitMain):
    BIN_NAME = "assetbuild"


class Reporter:
    """doit's reporter interface, forwarding to our display and keeping the summary.

    doit calls ``execute_task`` from worker threads and the rest from the main thread.
    """

    def __init__(self, outcomes: Outcomes, events: BuildEvents, summary: Summary) -> None:
        self.outcomes = outcomes
        self.events = events
        self.summary = summary
        self.unexpected = 0  # doit errors that are not an asset's failure or a skipped dependent (bugs)

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        pass

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        self.events.asset_started(_target_of(task.name))

    def add_success(self, task: Any) -> None:
        target = _target_of(task.name)
        outcome = self.outcomes.outcome(target)
        self.summary.count(outcome)
        self.events.asset_finished(target, outcome, self.outcomes.seconds(target))
        self.outcomes.forget(target)

    def add_failure(self, task: Any, fail: Any) -> None:
        target = _target_of(task.name)
        error = self.outcomes.error(target)
        if isinstance(error, Cancelled):
            failure = Failure(target, "interrupted", skipped=True)
            self.summary.skipped += 1
        elif error is not None:
            failure = Failure(target, error.reason, error.hint)
            if isinstance(error, ModifiedFileError):
                self.summary.modified += 1
            self.summary.failed += 1
        elif isinstance(fail, UnmetDependency):
            self.skip(target, [_target_of(name) for name in str(fail.message).split()])
            return
        else:  # a bug in a task: doit caught an exception
            self.unexpected += 1
            failure = Failure(target, fail.get_msg().strip().splitlines()[-1] if fail.get_msg() else str(fail))
            self.summary.failed += 1
        self.summary.failures.append(failure)
        self.events.asset_failed(target, failure)
        self.outcomes.forget(target)

    def skip(self, target: str, inputs: list[str]) -> None:
        """``target`` is not built because its input assets failed (or were skipped)."""
        failure = Failure(target, f"not built: input {', '.join(inputs)} failed", skipped=True)
        self.summary.skipped += 1
        self.summary.failures.append(failure)
        self.events.asset_failed(target, failure)

    def skip_uptodate(self, task: Any) -> None:
        self.summary.fresh += 1

    def skip_ignore(self, task: Any) -> None:
        pass

    def cleanup_error(self, exception: Any) -> None:
        self.events.warning(str(exception))

    def runtime_error(self, msg: str) -> None:
        self.unexpected += 1
        self.events.warning(msg)

    def teardown_task(self, task: Any) -> None:
        pass

    def complete_run(self) -> None:
        pass


# Assets handed to doit at once. doit holds a Task (a few KB) per asset for the whole of its run, so a
# first build of 100,000 assets in one doit run held ~300 MB of tasks; in batches it holds one batch's.
BATCH = 2000


def run(builder: Builder, targets: list[str], *, jobs: int, keep_going: bool, summary: Summary) -> int:
    """Run doit on the tasks of the stale ``targets`` (every stale input included, in dependency order),
    ``BATCH`` at a time. Returns doit's code (the worst of the batches')."""
    state = builder.project.state_dir
    make_state_dir(state)
    reporter = Reporter(builder, builder.events, summary)
    code = 0
    for start in range(0, len(targets), BATCH):
        if start and (builder.cancelled.is_set() or (code != 0 and not keep_going)):
            break  # stopped (interrupted, or a failure without --keep-going): the rest is not built
        failed = {failure.target for failure in summary.failures}
        batch = []
        for target in targets[start:start + BATCH]:
            # An input that failed in an earlier batch: skipped, as doit skips a dependent in its own run.
            upstream_failed = [up for up in builder.project.assets[target].upstream if up in failed]
            if upstream_failed:
                reporter.skip(target, upstream_failed)
                failed.add(target)
                code = max(code, 1)
            else:
                batch.append(target)
        if batch:
            code = max(code, _run_batch(builder, batch, reporter, jobs=jobs, keep_going=keep_going))
    return code


def _run_batch(builder: Builder, targets: list[str], reporter: Reporter, *, jobs: int, keep_going: bool) -> int:
    summary = reporter.summary
    skipped_before = summary.skipped
    config = {
        "dep_file": str(builder.project.state_dir / "doit.json"),
        "backend": doitdb.NAME,  # in memory: every task is stale by the plan (see doitdb)
        "reporter": reporter,
        "verbosity": 2,
        "num_process": jobs if jobs > 1 else 0,
        "par_type": "thread",
        "continue": keep_going,
    }
    loader = _Loader(task_dicts(builder, targets, only_stale=True), config)
    main = _AssetbuildDoit(loader, config_filenames=(), extra_config={"BACKEND": {doitdb.NAME: doitdb.LOCATION}})
    code = main.run(["run"] + [task_name(t) for t in targets])
    if code == 2 and summary.skipped > skipped_before and not reporter.unexpected:
        code = 1  # doit counts the dependents of a failed asset (UnmetDependency) as errors: a failure
    if code not in (0, 1):  # doit itself failed (not a task): a bug, never a user error
        raise RuntimeError(f"doit stopped with exit code {code}")
    return code

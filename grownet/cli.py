"""The ``grownet`` command.

User mistakes (an unknown model, a bad option, a malformed graph file) end with one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from grownet.errors import BadValueError, UserError
from grownet.files import check_replaceable
from grownet.graph.base import is_graph_file

if TYPE_CHECKING:  # torch loads with the graph: --help starts without it
    from grownet.graph import NetGraph


class UsageError(BadValueError):
    """A mistake the user can fix; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its mistakes as one line like every other (its usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"grownet: error: {message}; see {self.prog} --help\n")


def _parse_scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _parse_value(text: str) -> Any:
    """A builder option's value: a number, true/false, none, a string, or a list written
    ``12,24`` or ``[12,24]`` (how list options such as convnet's widths are given).

    >>> _parse_value("56"), _parse_value("A"), _parse_value("12,24"), _parse_value("[0.5]")
    (56, 'A', [12, 24], [0.5])
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_parse_scalar(v.strip()) for v in inner.split(",")] if inner else []
    if "," in text:
        return [_parse_scalar(v.strip()) for v in text.split(",")]
    return _parse_scalar(text)


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["depth=56", "shortcut=A"]`` -> ``{"depth": 56, "shortcut": "A"}``."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"option {item!r} is not KEY=VALUE (e.g. -o depth=56)")
        options[key.replace("-", "_")] = _parse_value(value)
    return options


def _load_graph(args: argparse.Namespace) -> NetGraph:
    from grownet.graph import NetGraph
    from grownet.zoo import build

    if args.model.endswith(".json"):
        if not Path(args.model).exists():
            raise UsageError(f"graph file {args.model} does not exist")
        return NetGraph.from_json(args.model)
    return build(args.model, **parse_options(args.option))


def cmd_models(args: argparse.Namespace) -> None:
    from grownet.zoo import MODELS

    for name, builder in sorted(MODELS.items()):
        doc = (builder.__doc__ or "").strip().splitlines()
        print(f"{name:24s} {doc[0] if doc else ''}")


def cmd_graph(args: argparse.Namespace) -> None:
    graph = _load_graph(args)
    shapes = graph.validate()
    costs = graph.costs()
    if args.nodes:
        print(f"{'node':28s} {'op':15s} {'shape':18s} {'params':>12s} {'MACs':>14s}")
        for node in graph.topological_order():
            c = costs[node]
            shape = "x".join(map(str, shapes[node]))
            print(f"{node:28s} {graph.op(node):15s} {shape:18s} {c.params:12,d} {c.macs:14,d}")
    ops = Counter(graph.op(n) for n in graph.nodes)
    print(f"model       {args.model}")
    print(f"input       {graph.input_shape}  ->  output {shapes[graph.output_node]}")
    print(f"nodes       {len(graph)} ({', '.join(f'{k} {v}' for k, v in ops.most_common())})")
    print(f"weighted    {ops['conv'] + ops['linear']} layers (conv + linear)")
    print(f"parameters  {graph.num_params():,d}")
    print(f"MACs        {graph.macs():,d} per sample forward ({2 * graph.macs() / 1e9:.3f} GFLOP)")
    if args.json:
        check_replaceable(args.json, label="--json", what="a grownet graph", ours=is_graph_file)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        graph.to_json(args.json)
        print(f"graph       written to {args.json}")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``max_iter`` -> ``--max-iter``), default: unset."""
    import dataclasses

    from grownet.train.config import HELP, TrainConfig

    for f in dataclasses.fields(TrainConfig):
        if f.name == "model_options":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind, text = str(f.type), HELP[f.name]
        if kind.startswith("bool"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif "list[int]" in kind:
            p.add_argument(flag, type=int, nargs="+", default=None, metavar="N", help=text)
        else:
            cast = int if "int" in kind else float if "float" in kind else str
            p.add_argument(flag, type=cast, default=None, metavar=f.name.upper(), help=text)


def _train_config(args: argparse.Namespace, extra: Sequence[str]) -> Any:
    import dataclasses

    from grownet.train.config import TrainConfig

    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name != "model_options" and getattr(args, f.name, None) is not None
    }
    options = parse_options(args.option) | _model_flags(extra)
    if args.config:
        config = TrainConfig.from_toml(args.config, **given)
        if options:
            config.model_options = {**config.model_options, **options}
        return config
    return TrainConfig.from_dict({**given, "model_options": options}, source="command line")


def _model_flags(extra: Sequence[str]) -> dict[str, Any]:
    """Flags the trainer does not know are builder options: ``--n 5 --dropin-length 2500``."""
    options: dict[str, Any] = {}
    items = list(extra)
    while items:
        flag = items.pop(0)
        if not flag.startswith("--") or len(flag) < 3:
            raise UsageError(f"unexpected argument {flag!r}; see grownet train --help")
        key, sep, value = flag[2:].partition("=")
        if not sep:
            if not items or items[0].startswith("--"):
                raise UsageError(f"model option --{key} needs a value")
            value = items.pop(0)
        options[key.replace("-", "_")] = _parse_value(value)
    return options


def _echo(worker: int | None = None) -> Callable[[str], None]:
    """Progress lines as they happen; a worker process's are marked with its number."""
    prefix = "" if worker is None else f"[worker {worker}] "
    return lambda line: print(prefix + line, flush=True)


def cmd_train(args: argparse.Namespace, extra: Sequence[str] = ()) -> None:
    from grownet.report.callback import WriteReport
    from grownet.train.progress import bits
    from grownet.train.trainer import Trainer

    config = _train_config(args, extra)
    trainer = Trainer(config, callbacks=[WriteReport()])
    result = trainer.run(resume=args.resume, overwrite=args.overwrite, extend=args.extend)
    if not trainer.world.is_main:
        return  # under torchrun rank 0 speaks for the run
    acc, loss = result.final_test_accuracy, result.final_test_loss
    shown = "accuracy n/a" if acc is None else f"accuracy {acc:.4f}"
    if trainer.dataset.per_token and loss is not None:
        shown = f"loss {loss:.4f} nats ({bits(loss):.3f} bits) per token, accuracy {acc:.4f}"
    print(
        f"{result.status}: {trainer.eval_split} {shown} after {result.iterations} iterations "
        f"({result.wall_time_s:.1f} s); run directory {result.run_dir}"
    )
    if result.status == "interrupted":
        print(f"continue with the same command (--name {Path(result.run_dir).name})")
        raise KeyboardInterrupt  # exit 130: a script must not take a stopped run for a finished one


def cmd_reproduce(args: argparse.Namespace) -> None:
    from grownet.report import try_write_report
    from grownet.reproduce import (
        format_table,
        load_recipe,
        plan_recipe,
        require_some_data,
        run_recipe,
        write_summary,
    )
    from grownet.shipped import resolve_recipe

    if args.list:
        from grownet.reproduce.listing import list_recipes

        if args.recipe:
            raise UsageError("--list lists every shipped recipe; give it no RECIPE")
        print(list_recipes(runs_dir=args.runs_dir, data_dir=args.data_dir))
        return
    if not args.recipe:
        raise UsageError("give a RECIPE (a shipped name or a TOML file), or --list to see them")
    recipe = load_recipe(resolve_recipe(args.recipe))
    overrides: dict[str, Any] = {}
    for key in ("max_iter", "data_dir", "device", "threads", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    # every mistake before any output
    plan = plan_recipe(recipe, cases=args.case, scale=args.scale, overrides=overrides)
    if not args.summary_only and args.worker is None:
        require_some_data(recipe, plan, runs_dir=args.runs_dir, scale=args.scale)
    if args.worker is not None:
        run_recipe(recipe, plan=plan, scale=args.scale, overrides=overrides,
                   runs_dir=args.runs_dir, workers=args.workers, storage=args.storage,
                   quiet=args.quiet, echo=_echo(args.worker), worker=args.worker)  # fmt: skip
        return
    print(f"{recipe.name}: {recipe.paper}", flush=True)
    if args.summary_only:
        where, rows = write_summary(recipe, args.runs_dir, scale=args.scale,
                                    data_dir=args.data_dir)  # fmt: skip
        summary: dict[str, Any] = {"text": format_table(rows), "dir": str(where)}
        if report := try_write_report(where):
            summary["report"] = str(report)
    else:
        summary = run_recipe(recipe, plan=plan, scale=args.scale, overrides=overrides,
                             runs_dir=args.runs_dir, workers=args.workers, storage=args.storage,
                             quiet=args.quiet, echo=_echo())  # fmt: skip
    print()
    print(summary["text"])
    print(f"\nsummary written to {summary['dir']}/summary.json")
    if "report" in summary:
        print(f"report written to {summary['report']}")


def cmd_search(args: argparse.Namespace) -> None:
    from grownet.search.runner import Search
    from grownet.search.runs import SearchInterrupted
    from grownet.search.spec import load_spec
    from grownet.search.summary import format_summary
    from grownet.shipped import resolve_spec

    spec = load_spec(
        resolve_spec(args.spec),
        name=args.name,
        runs_dir=args.runs_dir,
        data_dir=args.data_dir,
        device=args.device,
        seed=args.seed,
    )
    print(f"growth search {spec.name} on {spec.dataset} from {spec.model} ({spec.source})")
    try:
        search = Search(spec, quiet=args.quiet, echo=_echo(), workers=args.workers)
        summary = search.run(overwrite=args.overwrite)
    except SearchInterrupted as err:
        print(f"grownet: {err}; rerun the same command to resume", file=sys.stderr)
        raise KeyboardInterrupt from None
    print()
    print(format_summary(summary))


def cmd_study(args: argparse.Namespace) -> None:
    from grownet.shipped import resolve
    from grownet.study.runner import StudyRunner
    from grownet.study.spec import load_study_spec

    spec = load_study_spec(
        resolve(args.spec, "spec"), name=args.name, runs_dir=args.runs_dir,
        data_dir=args.data_dir, device=args.device, trials=args.trials, timeout_s=args.timeout,
    )  # fmt: skip
    runner = StudyRunner(spec, storage=args.storage, workers=args.workers, quiet=args.quiet,
                         echo=_echo(args.worker))  # fmt: skip
    if args.worker is not None:
        runner.run(worker=args.worker)
        return
    print(f"study {spec.name}: {spec.n_trials} trials of {spec.kind}, objectives "
          f"{', '.join(spec.objectives)}, sampler {spec.sampler}, pruner {spec.pruner}; "
          f"{args.workers} worker(s) on {runner.storage}", flush=True)  # fmt: skip
    summary = runner.run(compare=[Path(p) for p in args.compare])
    print()
    print(summary["text"])
    if "report" in summary:
        print(f"report: {summary['report']}")


def cmd_report(args: argparse.Namespace) -> None:
    from grownet.report import write_report

    page = write_report(args.run_dirs, args.out, standalone=args.standalone)
    print(f"report written to {page}")


def _add_worker_flags(p: argparse.ArgumentParser, where: str) -> None:
    """The flags of commands that run an Optuna study (study, reproduce)."""
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes on this machine (default 1; >1 uses a journal file)")
    p.add_argument("--storage", help="an SQLAlchemy URL (postgresql://...) or a journal file "
                   f"(default: {where}/study.db, or study.journal with --workers)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # a process --workers started


def _add_place_flags(
    p: argparse.ArgumentParser, *, runs_dir: str | None, data_dir: str, device: str
) -> None:
    """Where runs go and read from, and what they train on; the defaults named in the help.
    ``runs_dir``: the default directory, or None where the spec's own applies."""
    shown = runs_dir or "the spec's, else runs"
    p.add_argument(
        "--runs-dir", default=runs_dir, help=f"where run directories go (default: {shown})"
    )
    p.add_argument("--data-dir", help=f"dataset root (default: {data_dir})")
    p.add_argument("--device", help=f"auto, cpu, cuda or cuda:N (default: {device})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="grownet",
        epilog="A mistake prints one line and exits 2; --debug (or GROWNET_DEBUG=1) anywhere "
        "on the line shows its traceback.",
        description="Grow networks with gradual DropIn, thin them with depth and width dropout, "
        "and estimate the minimum depth and width your data needs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the papers' networks in the zoo")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "graph",
        help="build a zoo network (or read a graph.json) and show its shape, parameters and MACs",
    )
    p.add_argument("model", help="a zoo model name (see `grownet models`) or a graph .json file")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder option, repeatable (e.g. -o depth=56 -o shortcut=A; a list: "
        "-o widths=12,24 or -o widths=[12,24])",
    )
    p.add_argument("--nodes", action="store_true", help="print a per-node table")
    p.add_argument("--json", metavar="PATH", help="write the graph as node-link JSON")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser(
        "train",
        allow_abbrev=False,  # unknown flags are builder options: --n must not mean --name
        help="train a zoo network on a dataset, writing runs/<name>/",
        description="Train a zoo network. Flags not listed here are passed to the model "
        "builder, e.g. `grownet train --model lenet2n --n 5 --dropin-length 2500 "
        "--dataset mnist`.",
    )
    p.add_argument("--config", metavar="TOML", help="a TOML run spec (flags override it)")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder option, repeatable (same as --KEY VALUE; a list: --widths 12,24 or "
        "-o widths=[12,24])",
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from runs/<name>/checkpoint.pt when it exists (default: yes); with "
        "--no-resume a name that already holds a run is refused",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete what runs/<name>/ holds and train afresh (the only way a run is deleted)",
    )
    p.add_argument(
        "--extend",
        action="store_true",
        help="train a run on to a larger --max-iter (recorded in its config.json); refused "
        "for schedules that depend on max_iter (cosine)",
    )
    _add_config_flags(p)
    p.set_defaults(func=cmd_train, takes_extra=True)

    p = sub.add_parser(
        "reproduce",
        help="run a paper recipe (recipes/*.toml) and print the paper-vs-measured table",
        description="Run a paper's experiment (recipes/*.toml) as an Optuna grid study over "
        "its cases, each case training in runs/<recipe>/<case>/, then print and write the "
        "paper-vs-measured table (summary.json, summary.txt) and report.html. Ctrl-C and rerun "
        "the same command to continue: finished cases are not trained again, a stopped one "
        "resumes from its checkpoint. Cases whose data is missing are listed as not run.",
    )
    p.add_argument(
        "recipe",
        nargs="?",
        help="a shipped recipe's name (dropin_mnist_lenet) or the path of a recipe TOML file",
    )
    p.add_argument("--list", action="store_true",
                   help="list every shipped recipe: cases, data (present?), results")  # fmt: skip
    p.add_argument("--case", action="append", help="run only this case (repeatable)")
    p.add_argument("--scale", choices=("full", "quick"), default="full",
                   help="quick: every iteration count / 100, in runs/<recipe>-quick/, every "
                   "number labelled 'quick: not the paper's budget' (default: full)")  # fmt: skip
    p.add_argument("--max-iter", type=int, help="override every case's iteration budget")
    _add_place_flags(p, runs_dir="runs", data_dir="$GROWNET_DATA", device="cuda if available")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    _add_worker_flags(p, "runs/<recipe>")
    p.add_argument(
        "--summary-only", action="store_true", help="train nothing; rebuild the table from runs"
    )
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser(
        "search",
        help="grow a network on a dataset, estimate its minimum depth and width, verify, report",
        description="Run a growth search spec (search/*.toml): grow depth (blocks), width "
        "(units) or both, mixed in by gradual DropIn, while growth pays, sweep depth and width "
        "ratios for their knees, check every estimate by "
        "training the smaller network, write the run directory and report.html. Ctrl-C and "
        "rerun: finished stages and sweep points are not redone.",
    )
    p.add_argument(
        "spec",
        nargs="?",
        help="a shipped spec's name (digits, mnist, cifar10...; default: digits) or the path of "
        "a spec TOML file; an existing file always wins",
    )
    p.add_argument("--name", help="run directory name (default: the spec's name)")
    _add_place_flags(p, runs_dir=None, data_dir="the spec's, else $GROWNET_DATA",
                     device="the spec's, else cuda if available")  # fmt: skip
    p.add_argument("--seed", type=int, help="the [train] seed of every run (default: the spec's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--workers", type=int, default=1,
                   help="processes for the runs that do not wait on each other (folds, a stage "
                   "and its control, the final model's starts), each with its share of the CPU "
                   "threads (default: 1)")  # fmt: skip
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete what runs/<name>/ holds and search afresh (else a rerun resumes it)",
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "study",
        help="an Optuna study over training runs or growth searches (many workers, any storage)",
        description="Run a study spec (search/*_nas.toml): sample architectures and settings "
        "with Optuna, train each trial as its own run directory under runs/<name>/trials/, "
        "prune hopeless trials, and print the best trial or the Pareto set. Ctrl-C and rerun "
        "the same command to continue; the same command on many machines with one --storage "
        "URL shares one study.",
    )
    p.add_argument("spec", help="a study spec: a shipped name (digits_nas) or a TOML file")
    p.add_argument("--name", help="study and run directory name (default: the spec's)")
    _add_place_flags(p, runs_dir=None, data_dir="$GROWNET_DATA",
                     device="the spec's, else cuda if available")  # fmt: skip
    p.add_argument("--trials", type=int, help="finished trials wanted, over all workers")
    p.add_argument("--timeout", type=float, help="seconds each worker may start trials for")
    _add_worker_flags(p, "runs/<name>")
    p.add_argument("--compare", nargs="+", default=[], metavar="SEARCH_RUN",
                   help="growth-search run directories to place on the study's Pareto front "
                   "(dominated? by how much?), e.g. runs/digits")  # fmt: skip
    p.set_defaults(func=cmd_study)

    p = sub.add_parser(
        "report",
        help="draw an interactive HTML report of run directories (plotly, opens offline)",
        description="Draw learning curves, growth stages, sweeps, benchmarks, the network, "
        "Optuna studies and provenance from run directories' files alone; every report "
        "under one runs folder shares its plotly.min.js (--standalone: plotly.js inside the "
        "page).",
    )
    p.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="a run directory, or a recipe directory (runs/<recipe>/: all its cases)",
    )
    p.add_argument(
        "-o",
        "--out",
        metavar="OUT.html",
        help="the page to write (default: RUN_DIR/report.html for one directory, "
        "./report.html for several)",
    )
    p.add_argument("--standalone", action="store_true",
                   help="put plotly.js inside the page (one 5 MB file to move or mail) instead "
                   "of sharing the runs folder's plotly.min.js")  # fmt: skip
    p.set_defaults(func=cmd_report)

    from grownet.bench.command import register as register_bench
    from grownet.graph.export_command import register as register_export
    from grownet.graph.import_command import register as register_import

    register_bench(sub)
    register_import(sub)
    register_export(sub)
    return parser


def _one_line(err: BaseException) -> str:
    """The one line a user reads for a mistake of theirs, by the error's class."""
    if isinstance(err, UserError | ValueError):
        return " ".join(str(err).split())
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        reason = (err.strerror or type(err).__name__).lower()
        fix = _OS_FIXES.get(type(err), "check the path and try again")
        return f"{where}{reason}; {fix}"
    raise TypeError(err)  # unreachable: main catches only the classes above


# File-system mistakes: what the user can do about each.
_OS_FIXES: dict[type[OSError], str] = {
    FileNotFoundError: "check the path",
    PermissionError: "choose a location you can write (or read), or fix its permissions",
    IsADirectoryError: "name a file, not a directory",
    NotADirectoryError: "a part of the path is a file; name a directory",
    FileExistsError: "choose another name",
}


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    # A skipped file or a fallback is one line too; --debug shows where it was raised.
    print(f"grownet: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``grownet`` command; every user mistake is one line on stderr and exit 2.

    Mistakes are handled by class: any :class:`grownet.errors.UserError` (and the ValueErrors
    of argument checks), and file-system errors. Anything else is a bug and keeps its
    traceback; ``--debug`` or ``GROWNET_DEBUG=1`` shows the traceback of a mistake too.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("GROWNET_DEBUG", "") not in ("", "0") or "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as done:  # --help, or argparse's one-line error (see _Parser)
        return done.code if isinstance(done.code, int) else 2
    if getattr(args, "worker", None) is not None:  # a process that --workers started
        from grownet.train.progress import WORKER_INDEX

        os.environ[WORKER_INDEX] = str(args.worker)
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _show_warning
            if getattr(args, "takes_extra", False):
                args.func(args, extra)
            elif extra:
                raise UsageError(f"unrecognized arguments: {' '.join(extra)}; see grownet --help")
            else:
                args.func(args)
    except BrokenPipeError:
        # The reader went away (`grownet models | head`): not a mistake. Python would still
        # flush stdout at exit and complain, so stdout goes to /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command a pipe stopped
    except (UserError, ValueError, OSError) as err:
        if debug:
            raise
        print(f"grownet: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grownet: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

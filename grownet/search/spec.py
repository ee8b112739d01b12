"""A growth search spec: one TOML file in ``search/`` says what to grow, how, and how to check it.

Tables (every key optional except ``dataset`` and ``[base]``'s ``model``)::

    name = "digits"              # run directory under runs_dir (default: the file's stem)
    runs_dir = "runs"
    dataset = "digits"

    [base]                       # the network the search starts from: a zoo model
    model = "convnet"
    options = {widths = [16, 32]}

    [train]                      # TrainConfig keys for every training run of the search
    batch_size = 32

    [growth]                     # see GrowthSpec
    [width]                      # see SweepSpec (a width-dropout retention sweep)
    [depth]                      # see SweepSpec (a DropIn or depth-dropout ratio sweep)
    [verify]                     # see VerifySpec
    [validate]                   # see ValidateSpec: the split every decision reads
    [final]                      # see FinalSpec: the recommended network trained to the end

Mistakes raise :class:`SpecError` with one line naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grownet import specfile
from grownet.errors import BadValueError
from grownet.train.config import ConfigError, TrainConfig
from grownet.train.rundir import check_run_name

GROWTH_MODES = ("append", "double")
BLOCK_STARTS = ("fresh", "zero", "copy")
GROWTH_KINDS = ("depth", "width", "both")
WIDTH_INITS = ("random", "net2net")
DEPTH_METHODS = ("auto", "depth_dropout", "dropin", "off")
SWEEP_MODES = ("fine_tune", "one_shot")
DEFAULT_RATIOS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


class SpecError(BadValueError):
    """A search spec mistake; the message names the key and the fix."""


@dataclass(frozen=True)
class GrowthSpec:
    """Growth by gradual DropIn, in stages.

    ``insert_after``: the nodes after which new blocks go (each block mirrors the conv, BN and
    ReLU that end at that node; at a residual add, the ``units`` residual units ending there:
    a transformer block is 2, attention and MLP). ``block_start``: how a residual block's
    weights start: ``"fresh"``, ``"zero"`` (the layers ending its branches at zero, so it
    starts as the identity: masked growth) or ``"copy"`` (the weights of the block it repeats:
    stacking); DropIn mixes it in either way. ``mode="append"`` adds one block per position
    per stage; ``"double"`` adds one after every block already there (LeNet(2N), VGG8 to VGG16).
    ``stage_iters`` trains each stage (stage 0 trains the base); ``dropin_length`` mixes the new
    blocks in; ``stagger`` > 0 starts each new block's DropIn that many iterations after the
    previous one's (asynchronous DropIn). The search stops growing when the gain of a stage is
    not above ``min_gain`` with confidence ``confidence`` (see :mod:`grownet.search.decide`),
    after ``patience`` such stages in a row, when a stage diverges, or at ``max_stages``,
    ``max_depth`` or ``iter_budget``: the iterations of the whole search, every run of every
    phase summed (0: no bound but ``max_stages``); growth stops where another stage and the
    most the sweeps, checks and final model could then train would overrun it
    (:mod:`grownet.search.budget`). ``time_budget_s`` is a safety stop only: it makes the
    answer depend on the machine's load, and the decision says so when it fires.

    ``baseline``: also train each stage's parent network as long without growing it, and
    measure the stage's gain over that (:mod:`grownet.search.decide`): more iterations alone
    are not growth paying.

    ``kind``: what a stage grows. ``"depth"`` as above; ``"width"``: every layer of
    ``width_layers`` (default: every layer a width sweep may thin; a coupled group widens as
    one) gains units, ``width_step`` each if set, else its width times ``width_factor``
    (rounded up), mixed in unit by unit over ``dropin_length`` iterations
    (:func:`grownet.graph.widen.widen_gradually`; ``width_init`` "random" or "net2net"), and
    never past ``max_width`` units; ``"both"``: each stage grows whichever kind paid more per
    added FLOP (see :mod:`grownet.search.decide`).
    """

    kind: str = "depth"
    insert_after: tuple[str, ...] = ()
    units: int = 1
    block_start: str = "fresh"
    mode: str = "append"
    stage_iters: int = 1000
    dropin_length: int = 500
    stagger: int = 0
    max_stages: int = 4
    max_depth: int = 64
    iter_budget: int = 0
    time_budget_s: float = 86400.0
    min_gain: float = 0.0
    confidence: float = 0.9
    patience: int = 1
    baseline: bool = True
    width_factor: float = 2.0
    width_step: int = 0
    width_init: str = "random"
    width_layers: tuple[str, ...] = ()
    max_width: int = 1024

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of stage this growth may run, in the order they are first tried."""
        return ("depth", "width") if self.kind == "both" else (self.kind,)


@dataclass(frozen=True)
class SweepSpec:
    """A ratio sweep from the chosen network's weights: fine-tune ``iters_per_ratio`` at each
    ratio in turn (from the largest), measure the error, find the knee (see
    :mod:`grownet.search.knee`; ``max_rise`` is the error rise accepted over the plateau).

    Width: ``ratio`` is the share of channels kept; ``per_layer`` sweeps each layer alone,
    else all of ``layers`` (default: every conv and hidden linear layer that can be narrowed)
    together. Depth: ``method="depth_dropout"`` sweeps the drop probability p of every residual
    unit that keeps its shape (residual networks; see :mod:`grownet.search.residual`);
    ``"dropin"`` the DropIn ratio q of every grown block (grown networks); ``"auto"`` picks
    depth dropout on a residual network, else DropIn; ``"off"`` skips the depth sweep.

    ``mode="fine_tune"`` (the memorandum's sweep) trains ``iters_per_ratio`` at each ratio;
    ``stop_early`` stops once the ratios measured confirm a knee (or no plateau): the
    smaller ratios left could not move it, and are recorded as stopped, never as measured.
    ``mode="one_shot"`` (width, and the DropIn depth sweep) trains the network once for
    ``one_shot_iters`` (0: twice ``iters_per_ratio``) at one ratio a step, by the sandwich
    rule (:class:`grownet.graph.plan.Sandwich`), then reads every ratio's validation error
    from those weights after re-estimating BatchNorm statistics at that ratio on
    ``recalibrate`` training samples (:mod:`grownet.search.points`).
    """

    ratios: tuple[float, ...] = DEFAULT_RATIOS
    iters_per_ratio: int = 200
    mode: str = "fine_tune"
    stop_early: bool = True
    one_shot_iters: int = 0
    recalibrate: int = 512
    max_rise: float = 0.01
    confidence: float = 0.9
    per_layer: bool = False
    layers: tuple[str, ...] = ()
    method: str = "auto"
    enabled: bool = True


@dataclass(frozen=True)
class VerifySpec:
    """Each estimate is checked: the thinner or shallower network, built by surgery from the
    trained weights, is fine-tuned ``iters`` and must come within ``tolerance`` of the full
    network's accuracy (or within the noise of the test set, whichever is larger). A failed
    check backs off one swept ratio towards the full network and checks again, at most
    ``backoff`` times."""

    iters: int = 1000
    tolerance: float = 0.01
    confidence: float = 0.9
    backoff: int = 2


@dataclass(frozen=True)
class ValidateSpec:
    """The validation split that takes every decision of the search (a stage pays, a knee, a
    check); the test split is read once per reported network, after the decisions.

    A dataset that ships ``val/`` uses it. Otherwise ``[train] val_size`` if set, else a
    stratified, seeded hold-out of the training set (seed: ``[train] seed``) of
    ``fraction`` of it, at least ``min_size`` samples where that leaves ``1 - max_share`` of
    the training set, else ``max_share`` of it (:func:`grownet.data.validation_size`).

    ``folds`` >= 2: stratified k-fold cross-validation instead, the field's convention for
    small data: every run of the search trains once per fold, and every decision reads each
    training sample as the model that did not train on it answered it (k times the training,
    all the training set to decide on). The final model then trains on the whole training
    set."""

    fraction: float = 0.1
    min_size: int = 1000
    max_share: float = 0.25
    folds: int = 0

    def held_out(self, dataset: str, *, data_dir: str | None, download: bool) -> int:
        """The hold-out this rule gives ``dataset`` (0 where it ships ``val/``)."""
        from grownet.data import held_out_size  # reads the data: only when a run needs it

        return held_out_size(dataset, data_dir=data_dir, download=download,
                             fraction=self.fraction, min_size=self.min_size,
                             max_share=self.max_share)  # fmt: skip


FINAL_STARTS = ("inherited", "scratch")


@dataclass(frozen=True)
class FinalSpec:
    """The recommended network trained to the end: ``iters`` iterations (0: the chosen
    network's own training budget, ``stage_iters`` for each stage it grew through, the base's
    included) from each of ``starts`` ("inherited": the search's weights; "scratch": a fresh
    initialisation); the one with the better validation accuracy is the final model, and
    each is evaluated on test once. ``enabled = false`` skips it."""

    iters: int = 0
    starts: tuple[str, ...] = FINAL_STARTS
    enabled: bool = True


@dataclass(frozen=True)
class SearchSpec:
    name: str
    dataset: str
    model: str
    model_options: dict[str, Any]
    train: dict[str, Any]
    growth: GrowthSpec
    width: SweepSpec
    depth: SweepSpec
    verify: VerifySpec
    validate: ValidateSpec = ValidateSpec()
    final: FinalSpec = FinalSpec()
    runs_dir: str = "runs"
    source: str = ""
    data_dir: str | None = None
    device: str | None = None
    """Where the search reads its data and runs (command-line choices, not part of the spec:
    a search may resume from another data directory or device)."""

    @property
    def seed(self) -> int:
        """``[train] seed``: every run's, and every bootstrap's resampling."""
        return self.train_config(name="seed").seed

    @property
    def folds(self) -> int:
        """How many cross-validation folds every run trains (0: one run on a hold-out)."""
        return self.train_config(name="folds").folds

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The TrainConfig of one run of this search (``overrides``: name, max_iter ...)."""
        place = {"data_dir": self.data_dir, "device": self.device}
        data = {
            **self.train,
            **{k: v for k, v in place.items() if v is not None},
            "dataset": self.dataset,
            "model": self.model,
            "model_options": self.model_options,
            **overrides,
        }
        try:
            return TrainConfig.from_dict(data, source=f"{self.source} [train]")
        except ConfigError as err:
            raise SpecError(str(err)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _section(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{source}: [{key}] must be a table, got {value!r}")
    return value


def _fill(cls: type, table: dict[str, Any], where: str) -> Any:
    """``cls`` from a TOML table, each value checked against the field's default's type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(fields)}")
    values = {}
    for key, value in table.items():
        default = fields[key].default
        want = type(default)
        if want is tuple:
            if not isinstance(value, list):
                raise SpecError(f"{where}: {key} must be a list, got {value!r}")
            value = tuple(value)
        elif want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise SpecError(f"{where}: {key} must be {want.__name__}, got {value!r}")
        values[key] = value
    return cls(**values)


def _check_growth(g: GrowthSpec, where: str) -> None:
    if g.kind not in GROWTH_KINDS:
        raise SpecError(f"{where}: kind must be one of {GROWTH_KINDS}, got {g.kind!r}")
    if g.width_init not in WIDTH_INITS:
        raise SpecError(f"{where}: width_init must be one of {WIDTH_INITS}, got {g.width_init!r}")
    if g.width_step < 0:
        raise SpecError(f"{where}: width_step must be >= 0 (0: use width_factor), got "
                        f"{g.width_step!r}")  # fmt: skip
    if g.width_step == 0 and not 1.0 < g.width_factor < float("inf"):
        raise SpecError(f"{where}: width_factor must be a finite number > 1 (or set "
                        f"width_step), got {g.width_factor!r}")  # fmt: skip
    if g.max_width < 1:
        raise SpecError(f"{where}: max_width must be >= 1, got {g.max_width!r}")
    if g.mode not in GROWTH_MODES:
        raise SpecError(f"{where}: mode must be one of {GROWTH_MODES}, got {g.mode!r}")
    if g.block_start not in BLOCK_STARTS:
        raise SpecError(f"{where}: block_start must be one of {BLOCK_STARTS}, got "
                        f"{g.block_start!r}")  # fmt: skip
    for key in ("stage_iters", "dropin_length", "max_depth", "units"):
        if getattr(g, key) < 1:
            raise SpecError(f"{where}: {key} must be >= 1, got {getattr(g, key)!r}")
    for key in ("stagger", "max_stages", "iter_budget"):
        if getattr(g, key) < 0:
            raise SpecError(f"{where}: {key} must be >= 0, got {getattr(g, key)!r}")
    if g.patience < 1:
        raise SpecError(f"{where}: patience must be >= 1, got {g.patience!r}")
    if g.dropin_length > g.stage_iters:
        raise SpecError(
            f"{where}: dropin_length {g.dropin_length} is longer than stage_iters "
            f"{g.stage_iters}; new layers must finish mixing in within their stage"
        )
    if not 0.5 <= g.confidence < 1.0:
        raise SpecError(f"{where}: confidence must be in [0.5, 1), got {g.confidence!r}")
    if g.time_budget_s <= 0:
        raise SpecError(f"{where}: time_budget_s must be > 0, got {g.time_budget_s!r}")
    if g.max_stages > 0 and "depth" in g.kinds and not g.insert_after:
        raise SpecError(f"{where}: insert_after names no node to grow after; or max_stages = 0, "
                        'or kind = "width"')  # fmt: skip


def _check_sweep(s: SweepSpec, where: str, kind: str) -> None:
    if not s.ratios or any(not 0.0 < r < 1.0 for r in s.ratios):
        raise SpecError(f"{where}: ratios must be a non-empty list in (0, 1), got {s.ratios!r}")
    if len(set(s.ratios)) != len(s.ratios):
        raise SpecError(f"{where}: ratios has duplicates: {s.ratios!r}")
    if s.enabled and len(s.ratios) < 2:
        raise SpecError(f"{where}: ratios needs at least two values to find a knee between, got "
                        f"{list(s.ratios)!r}")  # fmt: skip
    if s.iters_per_ratio < 1:
        raise SpecError(f"{where}: iters_per_ratio must be >= 1, got {s.iters_per_ratio!r}")
    if not 0.0 <= s.max_rise < 1.0:
        raise SpecError(f"{where}: max_rise must be in [0, 1), got {s.max_rise!r}")
    if not 0.5 <= s.confidence < 1.0:
        raise SpecError(f"{where}: confidence must be in [0.5, 1), got {s.confidence!r}")
    if kind == "depth" and s.method not in DEPTH_METHODS:
        raise SpecError(f"{where}: method must be one of {DEPTH_METHODS}, got {s.method!r}")
    if s.mode not in SWEEP_MODES:
        raise SpecError(f"{where}: mode must be one of {SWEEP_MODES}, got {s.mode!r}")
    if kind == "depth" and s.mode == "one_shot" and s.method == "depth_dropout":
        raise SpecError(f'{where}: mode = "one_shot" sweeps the DropIn ratio; a depth-dropout '
                        'sweep fine-tunes each ratio: use method = "dropin", or mode = '
                        '"fine_tune"')  # fmt: skip
    if s.one_shot_iters < 0:
        raise SpecError(f"{where}: one_shot_iters must be >= 0 (0: twice iters_per_ratio), got "
                        f"{s.one_shot_iters!r}")  # fmt: skip
    if s.recalibrate < 1:
        raise SpecError(f"{where}: recalibrate must be >= 1 training samples, got "
                        f"{s.recalibrate!r}")  # fmt: skip


def _check_validate(v: ValidateSpec, where: str) -> None:
    for key in ("fraction", "max_share"):
        if not 0.0 < getattr(v, key) < 1.0:
            raise SpecError(f"{where}: {key} must be in (0, 1), got {getattr(v, key)!r}")
    if v.min_size < 1:
        raise SpecError(f"{where}: min_size must be >= 1, got {v.min_size!r}")
    if v.folds < 0 or v.folds == 1:
        raise SpecError(f"{where}: folds must be 0 (a hold-out) or >= 2, got {v.folds!r}")


def _check_final(f: FinalSpec, where: str) -> None:
    if f.iters < 0:
        raise SpecError(f"{where}: iters must be >= 0 (0: the chosen network's own budget), "
                        f"got {f.iters!r}")  # fmt: skip
    bad = [s for s in f.starts if s not in FINAL_STARTS]
    if f.enabled and (not f.starts or bad or len(set(f.starts)) != len(f.starts)):
        raise SpecError(f"{where}: starts must be distinct values of {FINAL_STARTS}, got "
                        f"{list(f.starts)!r}")  # fmt: skip


def load_spec(
    path: str | Path,
    *,
    data_dir: str | None = None,
    device: str | None = None,
    **overrides: Any,
) -> SearchSpec:
    """Read and check a search spec; ``overrides`` replace top-level keys (``name``, ``runs_dir``);
    ``data_dir`` and ``device`` override ``[train]``'s for every run.

    Example:
        >>> spec = load_spec("search/digits.toml")
        >>> spec.dataset, spec.model
        ('digits', 'convnet')
    """
    path = Path(path)
    return spec_from_dict(read_toml(path), path=path, data_dir=data_dir, device=device,
                          **overrides)  # fmt: skip


def read_toml(path: Path) -> dict[str, Any]:
    """A spec file's tables; a missing or malformed file is one :class:`SpecError` line."""
    missing = f"search spec {path} does not exist; see search/ for examples"
    return specfile.read_toml(path, error=SpecError, missing=missing)


def spec_from_dict(
    data: dict[str, Any],
    *,
    path: Path,
    data_dir: str | None = None,
    device: str | None = None,
    **overrides: Any,
) -> SearchSpec:
    """Check a spec's tables (as read from ``path``) and build the :class:`SearchSpec`."""
    source = str(path)
    if "study" in data:
        raise SpecError(f"{source} is a study spec; run it with `grownet study {path.stem}` "
                        "(or give its path)")  # fmt: skip
    known = {"name", "runs_dir", "dataset", "base", "train", "growth", "width", "depth", "verify",
             "validate", "final"}  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{source}: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    seed = overrides.pop("seed", None)
    data |= {k: v for k, v in overrides.items() if v is not None}
    if seed is not None:  # --seed: every run of the search, from weights to data order
        data["train"] = {**_section(data, "train", source), "seed": seed}
    base = _section(data, "base", source)
    if not isinstance(base.get("model"), str):
        raise SpecError(f'{source}: [base] needs model = "<zoo model>" (see `grownet models`)')
    if set(base) - {"model", "options"}:
        extra = sorted(set(base) - {"model", "options"})[0]
        raise SpecError(f"{source}: [base] unknown key {extra!r}; known keys: model, options")
    if not isinstance(data.get("dataset"), str):
        raise SpecError(f'{source}: dataset = "..." is required (e.g. "digits")')
    growth = _fill(GrowthSpec, _section(data, "growth", source), f"{source} [growth]")
    width = _fill(SweepSpec, _section(data, "width", source), f"{source} [width]")
    depth = _fill(SweepSpec, _section(data, "depth", source), f"{source} [depth]")
    verify = _fill(VerifySpec, _section(data, "verify", source), f"{source} [verify]")
    validate = _fill(ValidateSpec, _section(data, "validate", source), f"{source} [validate]")
    final = _fill(FinalSpec, _section(data, "final", source), f"{source} [final]")
    _check_validate(validate, f"{source} [validate]")
    _check_final(final, f"{source} [final]")
    _check_growth(growth, f"{source} [growth]")
    _check_sweep(width, f"{source} [width]", "width")
    _check_sweep(depth, f"{source} [depth]", "depth")
    if verify.iters < 1 or verify.backoff < 0 or not 0.0 <= verify.tolerance < 1.0:
        raise SpecError(
            f"{source} [verify]: need iters >= 1, backoff >= 0 and tolerance in [0, 1); got "
            f"iters={verify.iters}, backoff={verify.backoff}, tolerance={verify.tolerance}"
        )
    train = _section(data, "train", source)
    clash = sorted(set(train) & {"dataset", "model", "model_options", "name", "max_iter",
                                 "folds", "fold"})  # fmt: skip
    if clash:
        raise SpecError(
            f"{source} [train]: {clash[0]!r} is set by the search itself; remove it "
            "(dataset and model are top-level and [base] keys; iterations are [growth] keys; "
            "cross-validation is [validate] folds)"
        )
    spec = SearchSpec(
        name=str(data.get("name") or path.stem),
        dataset=data["dataset"],
        model=base["model"],
        model_options=dict(base.get("options", {})),
        train=train,
        growth=growth,
        width=width,
        depth=depth,
        verify=verify,
        validate=validate,
        final=final,
        runs_dir=str(data.get("runs_dir", "runs")),
        source=source,
        data_dir=data_dir,
        device=device,
    )
    check_run_name(spec.name, what=f"{source}: name")
    spec.train_config(name="check")  # every [train] key checked now, not at stage 3
    return spec

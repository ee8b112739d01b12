"""Minimum width and depth from ratio sweeps (memorandum Sec. 5), each estimate verified.

Width: prefix width-dropout layers after each swept layer's activation keep the first
``ceil(ratio * channels)`` channels, in training and test alike, so the net at a ratio *is* the
thinner net. Starting from the trained weights, the sweep fine-tunes at each ratio in turn,
largest first (progressive thinning), and measures the validation error, stopping once the knee
is settled; or (``mode = "one_shot"``) trains once at one ratio a step and reads every ratio
off those weights (:mod:`grownet.search.points`). Minimum channels:
``ceil(channels * knee ratio)``.

Depth (grown networks): every grown block's DropIn is held at ratio q, the share of its units
taken from the old path, as q rises ("letting the DropIn ratio increase": a shallower net).
Minimum depth: the base layers plus the grown ones a knee at q* still needs,
``grown - floor(grown * q*)``. Residual networks sweep the depth-dropout ratio instead
(:mod:`grownet.search.residual`).

Reading a sweep (:func:`read_knee`): the knee (a test against the full network at the sweep's
confidence over all its ratios, paired by sample where the points' correctness is known; see
:mod:`grownet.search.knee`) is the estimate. A flat curve has no knee, and
none is invented, but its smallest network bounds the minimum from above, so it is the
estimate checked; a curve with no plateau gives no estimate.

Verification: the estimate is built by surgery from the trained weights (:func:`narrow` keeps
the same prefix channels the sweep kept; removed blocks collapse onto their old path),
fine-tuned for the spec's ``[verify] iters`` beside the full network fine-tuned the same, and
passes if it comes within ``max(tolerance, z * paired se)`` of the full network's accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grownet.graph import GraphError, LayerSpec, NetGraph
from grownet.graph.coupling import (
    ChannelGroup,
    coupled_groups,
    group_norms,
    group_of,
    narrow_group,
    with_group_dropout,
)
from grownet.graph.executor import GraphNet
from grownet.graph.heads import narrow_heads
from grownet.graph.plan import Sandwich
from grownet.graph.surgery import insert_after
from grownet.graph.weights import check_narrowable, narrow
from grownet.layers import kept_channels
from grownet.search.decide import StageOutcome, gain_bound
from grownet.search.grow import Growth, removal_order, shallower, weighted_depth
from grownet.search.interval import knee_interval
from grownet.search.knee import FLAT, KNEE, Knee, find_knee
from grownet.search.points import (
    Correct,
    Settled,
    fine_tune_points,
    measured,
    one_shot_points,
)
from grownet.search.runs import Echo, State, Trained, Weights, train_run
from grownet.search.spec import SearchSpec, SweepSpec

_ACTIVATIONS = ("batchnorm", "relu", "lrn")

Verifier = Callable[[str, NetGraph, dict[str, Any]], Trained]


_SWEPT = ("conv", "linear", "embedding", "attention")


def width(graph: NetGraph, node: str) -> int:
    """Output channels (conv), features (linear or embedding, the last dimension) or heads
    (attention) of ``node``."""
    params = graph.spec(node).params
    keys = {"linear": "out_features", "embedding": "out_features", "attention": "heads"}
    key = keys.get(graph.op(node), "out_channels")
    return params[key]


def sweep_units(
    graph: NetGraph, layers: Sequence[str] = (), *, growing: bool = False
) -> list[tuple[str, ...]]:
    """What a width sweep may thin, one unit per entry: a layer alone, or a coupled group's
    conv, linear and embedding producers together (:mod:`grownet.graph.coupling`: the layers
    whose channels meet at the same adds, such as a ResNet stage or a transformer's residual
    stream, whose norms then normalise the kept prefix). ``layers`` if given (each checked;
    a layer of a coupled group brings its whole group), else every layer whose channels can be
    dropped (not the classifier, not into a DropIn's resize or the output:
    :attr:`grownet.graph.coupling.ChannelGroup.problem`) and every attention layer of more
    than one head (its heads: a unit of its own, since dropping a head leaves the layer's
    output width as it was: :mod:`grownet.graph.heads`). A width stage widens the same units
    (its mixers sit where a sweep zeroes); ``growing`` words a refusal for it."""
    wanted = list(layers) or [
        n for n in graph.nodes_of(*_SWEPT)
        if graph.op(n) != "attention" or graph.spec(n).params["heads"] > 1
    ]  # fmt: skip
    where = "[growth] width_layers" if growing else "[width] layers"
    for node in wanted:
        if node not in graph or graph.op(node) not in _SWEPT:
            raise GraphError(f"{where}: {node!r} is not a conv, linear, embedding or attention "
                             "node")  # fmt: skip
    # a group by its producers, and by its grouped (depthwise) convs, which carry its channels
    groups = {
        n: g
        for g in coupled_groups(graph)
        for n in (*g.producers, *(c for c, _ in g.carriers if graph.op(c) == "conv"))
    }
    shapes = graph.shapes()
    units: list[tuple[str, ...]] = []
    for node in wanted:
        group = groups.get(node)
        named = _layers_of(graph, group) if group and graph.op(node) != "attention" else ()
        if any(node in unit for unit in units) or (named and named in units):
            continue
        if graph.op(node) == "attention":
            units.append((node,))
            continue
        try:
            if group is None:
                check_narrowable(graph, node, shapes)
            elif why := group.problem:
                # a sweep zeroes, a growth mixes in, where a group's channels are read
                raise GraphError(f"{where}: {node!r} cannot be "
                                 f"{'grown' if growing else 'swept'}: {why}")  # fmt: skip
        except GraphError:
            if layers:
                raise
            continue
        units.append((node,) if group is None else _layers_of(graph, group))
    return units


def narrowable(graph: NetGraph, layers: Sequence[str] = ()) -> list[str]:
    """The conv and linear layers a width sweep may thin, the units of :func:`sweep_units`
    one after another."""
    return [node for unit in sweep_units(graph, layers) for node in unit]


def quantum(graph: NetGraph, unit: Sequence[str]) -> int:
    """The channels a sweep ``unit`` keeps or drops at a time: a grouped conv's per group
    (:attr:`grownet.graph.coupling.ChannelGroup.quantum`), else 1 (a channel, a unit, a
    head)."""
    return 1 if graph.op(unit[0]) == "attention" else group_of(graph, unit[0]).quantum


def _layers_of(graph: NetGraph, group: ChannelGroup) -> tuple[str, ...]:
    """A group's producers that name it in a sweep: not its attention layers (whose heads are
    units of their own) nor its channel pads (no weights)."""
    return tuple(p for p in group.producers if graph.op(p) in ("conv", "linear", "embedding"))


def _units_of(graph: NetGraph, layers: Sequence[str]) -> list[tuple[str, ...]]:
    """``layers`` (checked already) as sweep units: the layers of a coupled group together."""
    groups = {p: g for g in coupled_groups(graph) for p in g.producers}
    units: list[tuple[str, ...]] = []
    for node in layers:
        if not any(node in unit for unit in units):
            grouped = node in groups and graph.op(node) != "attention"
            units.append(_layers_of(graph, groups[node]) if grouped else (node,))
    return units


def activation_end(graph: NetGraph, node: str) -> str:
    """The last of the BatchNorm / ReLU / LRN nodes straight after ``node`` (or ``node``):
    zeroing channels there is what removing them does."""
    while (nxt := graph.consumers(node)) and len(nxt) == 1 and graph.op(nxt[0]) in _ACTIVATIONS:
        node = nxt[0]
    return node


def with_width_dropout(graph: NetGraph, layers: Sequence[str], retain: float) -> NetGraph:
    """``graph`` with a prefix width-dropout at ``retain`` after each layer's activation; a
    coupled group's channels are zeroed instead where they are read (every add then still
    sums equal widths, and what reaches the readers is what narrowing the group leaves)."""
    g = graph
    split: dict[tuple[str, str], str] = {}  # the groups are found on ``graph``, once
    for unit in _units_of(graph, layers):
        if g.op(unit[0]) == "attention":  # the first heads run alone
            spec = g.spec(unit[0])
            g = g.copy()
            g.set_spec(unit[0], spec.replace(keep_heads=kept_channels(spec.params["heads"],
                                                                      retain)))  # fmt: skip
            continue
        group = group_of(graph, unit[0])
        if len(unit) > 1 or group.coupled:
            g = with_group_dropout(g, group, retain, base=graph, split=split)
            continue
        spec = LayerSpec("width_dropout", retain=retain, mode="prefix")
        g = insert_after(g, activation_end(g, unit[0]), [(f"{unit[0]}_wd", spec)], join="plain")
    return g


def one_shot_sandwich(
    graph: NetGraph, layers: Sequence[str], ratios: Sequence[float]
) -> tuple[NetGraph, Sandwich]:
    """The graph a one-shot width sweep of ``layers`` trains (every unit's zeroing at 1.0)
    and the sandwich drawing its width a step: the zeroing nodes and the norms of the swept
    groups (a residual stream's) take each step's share together, so the network at a share
    is the one :func:`with_width_dropout` builds at it."""
    swept = with_width_dropout(graph, layers, 1.0)
    zeroing = [n for n in swept.nodes_of("width_dropout") if n not in graph]
    norms = [n for unit in _units_of(graph, layers) if graph.op(unit[0]) != "attention"
             for n in group_norms(graph, group_of(graph, unit[0]))]  # fmt: skip
    return swept, Sandwich(values=(1.0, *ratios), retain=(*zeroing, *dict.fromkeys(norms)))


@dataclass
class SweepResult:
    """One sweep as ``sweeps.json`` holds it (see :func:`grownet.report.load.check_sweeps`)."""

    record: dict[str, Any]
    reduced: Trained | None
    passed: bool


def _verify(
    record: dict[str, Any],
    full: Trained,
    reduced: Trained,
    tolerance: float,
    confidence: float,
) -> bool:
    gain, low = gain_bound(_outcome(reduced), _outcome(full), confidence)
    allowed = max(tolerance, gain - low)  # the larger of the tolerance and the test set's noise
    passed = gain >= -allowed
    # How many samples the verdict stood from its threshold: within one or two, another
    # validation draw could have turned it, and the summary says so.
    margin = round((gain + allowed) * reduced.n_test, 6)
    record["verification"] = {
        "full_accuracy": full.accuracy,
        "reduced_accuracy": reduced.accuracy,
        "passed": passed,
        "allowed_drop": allowed,
        "margin_samples": margin,
        "split": reduced.split,
        "n": reduced.n_test,
        "full_params": full.graph.num_params(),
        "reduced_params": reduced.graph.num_params(),
        "run": str(reduced.path),
    }
    return passed


def _outcome(run: Trained) -> StageOutcome:
    return StageOutcome(0, 0, run.accuracy, run.n_test, run.status, correct=run.correct)


def width_sweep(
    spec: SearchSpec,
    folder: Path,
    start: Trained,
    layers: Sequence[str],
    full: Trained,
    verify: Verifier,
    *,
    echo: Echo,
    quiet: bool = False,
) -> SweepResult:
    """Sweep the width of ``layers`` together (a single layer: that layer alone)."""
    sweep = spec.width
    units = _units_of(start.graph, layers)
    label = units[0][0] if len(units) == 1 else None  # one layer or one coupled group
    ratios = sorted(sweep.ratios, reverse=True)
    echo(f"width sweep of {label or f'{len(layers)} layers'}: {len(ratios)} ratios")
    reference, passes = start, 0
    if sweep.mode == "one_shot":
        graph, sandwich = one_shot_sandwich(start.graph, layers, ratios)
        # the plateau is the one-shot network's own reading; the checks still narrow
        # ``start``'s weights, as a fine-tuned sweep's do: the two modes differ in how the
        # knee is read, not in how it is checked
        points, correct, reference, passes = one_shot_points(
            spec, sweep, folder, start, graph, sandwich, echo, quiet
        )
    else:
        points, correct = fine_tune_points(
            spec, sweep, folder, start,
            lambda r: (with_width_dropout(start.graph, layers, r), None),
            ratios, echo, quiet, settled=settled_by("width", start, sweep),
        )  # fmt: skip
    record, candidates = read_knee("width", points, reference, sweep, correct, seed=spec.seed)
    _one_shot(record, sweep, passes)
    record |= {"layer": label, "layers": list(layers), "units": [list(u) for u in units]}
    # a coupled group's channels are counted once: its layers share them; a grouped conv's
    # go a whole conv group at a time
    sizes = {unit: width(start.graph, unit[0]) for unit in units}
    quanta = {unit: quantum(start.graph, unit) for unit in units}
    interval = record["interval"]
    for end in ("low", "high"):
        interval[f"{end}_channels"] = {
            node: kept_channels(n, interval[f"{end}_ratio"], quanta[unit])
            for unit, n in sizes.items() for node in unit
        }  # fmt: skip
    echo(f"  {record['finding']}")
    if not candidates:
        return SweepResult(record, None, False)

    def attempt(ratio: float) -> tuple[dict[str, Any], Trained]:
        kept = {unit: kept_channels(n, ratio, quanta[unit]) for unit, n in sizes.items()}
        keep = {node: k for unit, k in kept.items() for node in unit}
        estimate = {"ratio": ratio, "size": sum(kept.values()),
                    "full_size": sum(sizes.values()), "channels": keep}  # fmt: skip
        return estimate, verify(f"width-{label or 'all'}-r{ratio:.3f}", *thinned(start, keep))

    return estimate_and_check(spec, record, full, attempt, candidates, echo)


def _one_shot(record: dict[str, Any], sweep: SweepSpec, passes: int) -> None:
    """Mark how the sweep's points were measured, and what its forward-only passes cost."""
    record["mode"], record["forward_flops"] = sweep.mode, passes
    if sweep.mode == "one_shot":
        record["finding"] = "one-shot: " + record["finding"]


def settled_by(kind: str, reference: Trained, sweep: SweepSpec) -> Settled:
    """The early stop of a fine-tuned sweep: two ratios in a row off the plateau (the knee
    finder's confirmed rise, tested over the ratios measured so far) settle the knee above
    them, and no smaller ratio can move it."""

    def settled(points: list[dict[str, Any]], correct: list[Correct]) -> str:
        if len(points) < 2:
            return ""
        # off the plateau, in the points' order: the sweep's, largest network first
        off = _knee_of(kind, points, reference, sweep, correct)[1].off
        for a in range(len(off) - 1):
            if off[a] and off[a + 1]:
                return (f"ratios {points[a]['ratio']:g} and {points[a + 1]['ratio']:g} are both "
                        "off the plateau: the knee is settled")  # fmt: skip
        return ""

    return settled


def _knee_of(
    kind: str,
    points: Sequence[dict[str, Any]],
    reference: Trained,
    sweep: SweepSpec,
    correct: Sequence[Correct] | None,
) -> tuple[list[float], Knee]:
    """The knee of measured ``points`` against ``reference`` at the sweep's confidence, and
    their ratios as the knee finder reads them (the share of the network kept: a depth
    ratio, the share taken out, as ``1 - ratio``)."""
    kept = [p["ratio"] if kind == "width" else 1.0 - p["ratio"] for p in points]
    knee = find_knee(
        kept, [p["error"] for p in points], n_test=reference.n_test,
        plateau=1.0 - reference.accuracy, max_rise=sweep.max_rise,
        confidence=sweep.confidence, correct=correct, plateau_correct=reference.correct,
    )  # fmt: skip
    return kept, knee


def read_knee(
    kind: str,
    points: list[dict[str, Any]],
    reference: Trained,
    sweep: SweepSpec,
    correct: Sequence[Sequence[bool] | None] | None = None,
    *,
    seed: int = 0,
) -> tuple[dict[str, Any], list[float]]:
    """The sweep's record with its knee, and the ratios to check, best estimate first.

    The knee is tested against ``reference`` (the full network) at ``sweep.confidence`` over
    all the swept ratios (:func:`grownet.search.knee.find_knee`), paired sample by sample when
    ``correct`` holds every point's per-sample correctness, else from the error rates.

    Width ratios are the share kept; depth ratios (DropIn q, depth-dropout p) the share taken
    out, so the knee finder, which reads "larger ratio = more network", sees ``1 - ratio``.
    The ratios to check: the knee, then each ratio back towards the full network. A flat
    curve has no knee, but its smallest network is an upper bound on the minimum worth
    checking: it is checked first, the same way. A curve with no plateau gives none.

    The record's ``interval`` is the knee's bootstrap interval over the validation samples
    (:mod:`grownet.search.interval`, resampled with ``seed``) in the swept ratios:
    ``low_ratio`` the smaller network's end, ``high_ratio`` the larger's.
    """
    removal = kind != "width"
    read = measured(points)  # stopped points carry no error, and take no part
    ratios = [points[i]["ratio"] for i in read]
    errors = [points[i]["error"] for i in read]
    if correct is not None:
        correct = [correct[i] for i in read]
    kept, knee = _knee_of(kind, [points[i] for i in read], reference, sweep, correct)
    at = {KNEE: knee.ratio, FLAT: min(kept)}.get(knee.kind)
    on_plateau = sorted(k for k in kept if at is not None and k >= at)
    candidates = [ratios[kept.index(k)] for k in on_plateau]
    # The finding names the ratios the user swept, not the finder's "share kept".
    finding = knee.describe(lambda k: ratios[kept.index(k)])
    if knee.kind == FLAT:
        finding += f"; the smallest network (ratio {candidates[0]:g}) is checked as a bound"
    if stopped := [p["ratio"] for i, p in enumerate(points) if i not in read]:
        finding += f"; ratio {', '.join(f'{r:g}' for r in stopped)} stopped early, not trained"
    spread = knee_interval(
        kept, errors, n=reference.n_test, plateau=1.0 - reference.accuracy,
        max_rise=sweep.max_rise, confidence=sweep.confidence, correct=correct,
        plateau_correct=reference.correct, seed=seed,
    )  # fmt: skip

    def swept(share: float) -> float:  # a kept share back to the ratio the user swept
        return round(1.0 - share, 9) if removal else share

    interval = {"low_ratio": swept(spread.low), "high_ratio": swept(spread.high),
                **spread.to_dict()}  # fmt: skip
    record = {
        "kind": kind,
        "layer": None,
        "points": points,
        "knee": {"ratio": candidates[0], "error": knee.error} if knee.found else None,
        "finding": finding,
        # what the knee was read against, so a report draws the threshold without guessing
        "plateau": knee.plateau,
        "max_rise": knee.max_rise,
        "confidence": knee.confidence,
        "interval": interval,
        "estimate": None,
        "verification": None,
    }
    return record, candidates


def sized(record: dict[str, Any], size: Callable[[float], int]) -> None:
    """Give a depth sweep's interval its ends in layers (or units): ``size`` of a ratio."""
    interval = record["interval"]
    interval["low_size"] = size(interval["low_ratio"])
    interval["high_size"] = size(interval["high_ratio"])


def estimate_and_check(
    spec: SearchSpec,
    record: dict[str, Any],
    full: Trained,
    attempt: Callable[[float], tuple[dict[str, Any], Trained]],
    candidates: Sequence[float],
    echo: Echo,
    *,
    removes: Callable[[float], int] | None = None,
    what: str = "",
) -> SweepResult:
    """Check the estimate at the knee; if it fails, back off one ratio towards the full
    network and check again, up to ``[verify] backoff`` times. Every attempt is recorded; the
    record's estimate is the last one tried, shown as failed if none passed.

    Depth sweeps pass ``removes`` (how many of their ``what`` a ratio takes out): a ratio
    that removes none is no estimate and is not checked, and of ratios that remove as many
    (one network) only the first is: the others' verdicts are decided by it (MNIST, two grown
    blocks: q = 0.75 and 0.5 both take one out; the second check trained the same network
    again)."""
    if removes and candidates and not (candidates := [r for r in candidates if removes(r)]):
        record["finding"] += f"; fewer than one {what} can go"
    if removes:
        counts = [removes(r) for r in candidates]
        candidates = [r for i, r in enumerate(candidates) if counts[i] not in counts[:i]]
    tries = []
    reduced = None
    for ratio in candidates[: 1 + spec.verify.backoff]:
        estimate, reduced = attempt(ratio)
        record["estimate"] = estimate
        passed = _verify(record, full, reduced, spec.verify.tolerance, spec.verify.confidence)
        echo(f"  check at ratio {ratio:g}: {_said(record)}")
        tries.append({"ratio": ratio, **record["verification"]})
        if passed:
            break
    record["attempts"] = tries
    return SweepResult(record, reduced, bool(tries) and tries[-1]["passed"])


def thinned(start: Trained, keep: dict[str, int]) -> tuple[NetGraph, Weights]:
    """``start``'s network with each layer narrowed to its first ``keep[layer]`` channels; a
    coupled group's layers (which share one count) are narrowed together, in ``keep``'s order
    (a stage before the stage its channel pads feed). Every fold's weights alike."""
    if not isinstance(start.state, tuple):
        return _narrowed(start.graph, start.state, keep)
    narrowed = [_narrowed(start.graph, state, keep) for state in start.state]
    return narrowed[0][0], tuple(state for _, state in narrowed)


def _narrowed(graph: NetGraph, state: State, keep: dict[str, int]) -> tuple[NetGraph, State]:
    net = GraphNet(graph)
    net.load_state_dict(state)
    done: set[str] = set()
    for node, count in keep.items():
        if node in done:
            continue
        if net.graph.op(node) == "attention":
            net = narrow_heads(net, node, count)
            continue
        group = group_of(net.graph, node)
        if group.coupled:
            net = narrow_group(net, group, count)
            done |= set(_layers_of(net.graph, group))  # its attention layers' heads are not
        else:
            net = narrow(net, node, count)
    return net.graph, net.state_dict()


def depth_sweep(
    spec: SearchSpec,
    folder: Path,
    grown: Trained,
    growth: Growth,
    full: Trained,
    verify: Verifier,
    *,
    echo: Echo,
    quiet: bool = False,
) -> SweepResult:
    """Raise the DropIn ratio of every grown block; the knee says how many it needs."""
    sweep = spec.depth
    blocks = removal_order(growth)
    ratios = sorted(sweep.ratios)  # q rising: ever shallower
    echo(f"depth sweep (DropIn ratio) over {len(blocks)} grown blocks: {len(ratios)} ratios")
    reference, passes = grown, 0
    if sweep.mode == "one_shot":
        sandwich = Sandwich(values=(0.0, *ratios), dropin=tuple(blocks))
        points, correct, reference, passes = one_shot_points(
            spec, sweep, folder, grown, grown.graph, sandwich, echo, quiet
        )
    else:
        points, correct = fine_tune_points(
            spec, sweep, folder, grown,
            lambda q: (grown.graph, dict.fromkeys(blocks, q)),
            ratios, echo, quiet, settled=settled_by("dropin", grown, sweep),
        )  # fmt: skip
    record, candidates = read_knee("dropin", points, reference, sweep, correct, seed=spec.seed)
    _one_shot(record, sweep, passes)
    echo(f"  {record['finding']}")
    depth = weighted_depth(grown.graph)

    def removes(q: float) -> int:
        return math.floor(round(len(blocks) * q, 9))

    sized(record, lambda q: depth - removes(q))

    def attempt(q: float) -> tuple[dict[str, Any], Trained]:
        estimate = {"ratio": q, "size": depth - removes(q), "full_size": depth,
                    "blocks_removed": removes(q)}  # fmt: skip
        graph = shallower(grown.graph, growth, removes(q))
        return estimate, verify(f"depth-q{q:.3f}", graph, grown.state)

    return estimate_and_check(
        spec, record, full, attempt, candidates, echo, removes=removes, what="grown block"
    )


def close_call(v: dict[str, Any]) -> str:
    """"" or why a check's verdict is fragile: within two samples of its threshold."""
    margin = v.get("margin_samples")
    if margin is None or abs(margin) > 2:
        return ""
    side = "above" if margin >= 0 else "below"
    return f" (a close call: {abs(margin):.1f} sample(s) {side} the threshold)"


def _said(record: dict[str, Any]) -> str:
    v = record["verification"]
    verdict = "passed" if v["passed"] else "FAILED"
    return (
        f"{verdict}: reduced {100 * v['reduced_accuracy']:.2f} % vs full "
        f"{100 * v['full_accuracy']:.2f} % {v['split']} (allowed drop "
        f"{100 * v['allowed_drop']:.2f} points), {v['reduced_params']:,} vs "
        f"{v['full_params']:,} parameters{close_call(v)}"
    )


def make_verifier(spec: SearchSpec, folder: Path, *, echo: Echo, quiet: bool) -> Verifier:
    """Fine-tune a reduced network for ``[verify] iters`` in ``folder/<label>``."""

    def verify(label: str, graph: NetGraph, state: dict[str, Any]) -> Trained:
        echo(f"  verifying {label}: {weighted_depth(graph)} layers, {graph.num_params():,} params")
        return train_run(
            spec, folder / label, graph, iters=spec.verify.iters, init_state=state, quiet=quiet
        )

    return verify

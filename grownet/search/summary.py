"""What a search answers, as ``search_summary.json`` holds it and as the user reads it.

Every accuracy names its split: ``accuracy`` (with ``split``, "val" under the search's
protocol) is what the decisions read; ``test_accuracy`` was read once, after every decision,
for each reported network (the full network, the recommendation, the final models). The
intervals are the bootstrap's over the validation samples (:mod:`grownet.search.interval`).
"""

from __future__ import annotations

from typing import Any

from grownet.search.decide import REPLICATES
from grownet.search.sweeps import close_call
from grownet.train.compute import format_flops


def network_entry(run: Any, depth: int, test: Any | None = None) -> dict[str, Any]:
    """One reported network: size, the decision split's accuracy and (read once) test's."""
    entry = {
        "depth": depth,
        "params": run.graph.num_params(),
        "flops": 2 * run.graph.macs(),
        "accuracy": run.accuracy,
        "split": run.split,
        "run": str(run.path),
    }
    if test is not None:
        entry |= {"test_accuracy": test.accuracy, "n_test": test.n}
    return entry


def sweep_entry(record: dict[str, Any], passed: bool) -> dict[str, Any]:
    """A sweep's line of the summary: finding, check, interval."""
    verification = record.get("verification") or {}
    return {
        "kind": record["kind"],
        "layer": record["layer"],
        "finding": record["finding"],
        "passed": passed,
        "checked_ratio": (record["estimate"] or {}).get("ratio"),
        "close_call": close_call(verification).strip(" ()"),
        "interval": record.get("interval"),
        "mode": record.get("mode", "fine_tune"),
        "stopped": sum(1 for p in record["points"] if p.get("error") is None),
    }


def width_interval(sweeps: list[dict[str, Any]]) -> dict[str, tuple[int, int]] | None:
    """Each swept layer's channel interval, from every width sweep's bootstrap."""
    ends: dict[str, tuple[int, int]] = {}
    for s in sweeps:
        interval = s.get("interval") or {}
        if s["kind"] == "width" and "low_channels" in interval:
            for node, low in interval["low_channels"].items():
                ends[node] = (low, interval["high_channels"][node])
    return ends or None


def depth_interval(sweeps: list[dict[str, Any]]) -> tuple[int, int] | None:
    """The depth sweep's interval in layers (or residual units), if one ran."""
    for s in sweeps:
        interval = s.get("interval") or {}
        if s["kind"] != "width" and "low_size" in interval:
            return interval["low_size"], interval["high_size"]
    return None


def _sweep_line(w: dict[str, Any]) -> str:
    line = f"{w['kind']} sweep{' of ' + w['layer'] if w['layer'] else ''}: {w['finding']}"
    if w.get("checked_ratio") is None:
        return line
    verdict = "passed" if w["passed"] else "FAILED"
    close = f" ({w['close_call']})" if w.get("close_call") else ""
    return f"{line}; check {verdict} at ratio {w['checked_ratio']:g}{close}"


def _compute_text(s: dict[str, Any]) -> str:
    """" (FLOPs in N iterations over R runs)" where the summary has its compute."""
    c = s.get("compute")
    if not c:
        return ""
    return (f" ({format_flops(c['train_flops'])}: {c['iterations']:,} iterations over "
            f"{c['runs']} runs)")  # fmt: skip


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _interval_text(s: dict[str, Any]) -> list[str]:
    lines = []
    rec = s["recommended"]
    level = next((w["interval"]["level"] for w in s["sweeps"] if w.get("interval")), 0.9)
    if (depth := s.get("depth_interval")) is not None:
        unit = "residual units" if any(w["kind"] == "depth" for w in s["sweeps"]) else "layers"
        lines.append(f"depth sweep's {100 * level:g} % interval: {depth[0]} to {depth[1]} "
                     f"{unit} (bootstrap over the {s['n_val']} validation samples)")  # fmt: skip
    if (widths := s.get("width_interval")) is not None:
        low = "/".join(str(v[0]) for v in widths.values())
        high = "/".join(str(v[1]) for v in widths.values())
        names = "/".join(widths)
        units = {**rec["widths"], **rec.get("heads", {})}  # an attention layer's: its heads
        chosen = "/".join(str(units.get(n, "?")) for n in widths)
        lines.append(f"widths {names} {chosen} ({100 * level:g} % interval {low} to {high}, "
                     f"bootstrap over the {s['n_val']} validation samples)")  # fmt: skip
    return lines


def format_summary(s: dict[str, Any]) -> str:
    """The short text a user reads at the end of ``grownet search``."""
    rec, best, full = s["recommended"], s["best"], s["full"]
    saved = 1.0 - rec["params"] / full["params"]
    flops = 1.0 - rec["flops"] / full["flops"]
    grown = s.get("grown", ["depth"] if s["depth_pays"] else [])
    if grown and set(grown) != {"depth"}:
        depth = (f"growth pays: kept stage {s['chosen_stage']}, grown by "
                 f"{', '.join(grown)} (depth {full['depth']})")  # fmt: skip
    elif s["depth_pays"]:
        depth = f"depth pays: growth kept stage {s['chosen_stage']} (depth {full['depth']})"
    elif s["stages"] == 1:
        depth = "no growth stage ran: the base depth is kept"
    elif s.get("growth_kind", "depth") != "depth":
        depth = "growth does not pay on this data: the base network is kept"
    else:
        depth = "depth does not pay on this data: the base depth is kept"
    widths = ", ".join(f"{n}={c}" for n, c in rec["widths"].items())
    if rec.get("heads"):
        widths += "; heads " + ", ".join(f"{n}={c}" for n, c in rec["heads"].items())
    split = rec.get("split", "test")
    lines = [
        f"search {s['name']} on {s['dataset']}: {s['stages']} stage(s), {s['wall_time_s']:.0f} s "
        f"this call, {s['train_time_s']:.0f} s of training in all runs{_compute_text(s)}",
        _protocol_line(s),
        f"growth: {s['growth_decision']}",
        depth,
        *_support_line(s),
        *(_sweep_line(w) for w in s["sweeps"]),
        f"recommended: depth {rec['depth']}, widths {widths}",
        *_interval_text(s),
        f"{split} accuracy: recommended {_pct(rec['accuracy'])} vs full {_pct(full['accuracy'])} "
        f"(depth {full['depth']}); best seen {_pct(best['accuracy'])} (depth {best['depth']}, "
        f"chosen on {split}); {s.get('n_val', s.get('n_test'))} {split} samples",
    ]
    if "test_accuracy" in rec:
        folds = (s.get("protocol") or {}).get("folds")
        weights = f"the mean of its {folds} fold models" if folds else "the search's weights"
        lines.append(
            f"test accuracy (read once, after every decision): recommended "
            f"{_pct(rec['test_accuracy'])} with {weights}, full "
            f"{_pct(full.get('test_accuracy'))}; {rec['n_test']} test samples"
        )
    if final := s.get("final"):
        others = "; ".join(f"{r['start']}: {_final_figures(r)}" for r in final["runs"])
        chosen = final["chosen"]
        how = (f"chosen on {chosen['split']}" if chosen["val_accuracy"] is not None
               else "trained on the whole training set")  # fmt: skip
        lines.append(
            f"final model ({final['iters']} iterations, {chosen['start']} weights, {how}): "
            f"{_final_figures(chosen)} [{others}] -> {final['model']}"
        )
    lines += [
        f"parameters: {rec['params']:,} vs {full['params']:,} of the full network "
        f"({100 * saved:.1f} % saved); FLOPs per sample: {rec['flops']:,} vs {full['flops']:,} "
        f"({100 * flops:.1f} % saved)",
        f"report: {s['report']}",
    ]
    return "\n".join(lines)


def _support_line(s: dict[str, Any]) -> list[str]:
    """How sure growth's answer is: the stage kept over bootstrap resamples of validation."""
    support = s.get("growth_support")
    if not support or s["stages"] < 2:
        return []
    shares = ", ".join(f"stage {x['stage']} (depth {x['depth']}) {100 * x['share']:.0f} %"
                       for x in support)  # fmt: skip
    line = (f"growth's answer over {REPLICATES} bootstrap resamples of the validation samples: "
            f"{shares}")  # fmt: skip
    # judged on the shares as printed, so "90 %" never reads as unsettled
    if max(round(100 * x["share"]) for x in support) < 90:
        line += "; the data do not settle the depth: several stages are supported"
    return [line]


def _final_figures(run: dict[str, Any]) -> str:
    test = f"test {_pct(run['test_accuracy'])}"
    if run["val_accuracy"] is None:
        return test
    return f"{run['split']} {_pct(run['val_accuracy'])}, {test}"


def _protocol_line(s: dict[str, Any]) -> str:
    p = s.get("protocol")
    if not p:
        return "decisions on the test split (a search from before the validation protocol)"
    if p["decisions"] != "val":
        return f"decisions on the {p['decisions']} split: no validation split was held out"
    held = p["held_out"]
    what = "every training sample" if p.get("folds") else f"{p['n_val']} samples"
    return (
        f"decisions on the validation split ({what}, {held}); the test split "
        f"({p['n_test']} samples) is read once per reported network, after every decision"
    )

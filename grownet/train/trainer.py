"""The trainer: an iteration-based loop, as the papers count, writing a run directory.

One step: draw the plan for this iteration (gate draws, DropIn ratios), set the learning rate
from the schedule, take the next batch, forward under autocast on CUDA, backward, SGD step.
Every ``display_interval`` a train record and every ``test_interval`` a test record go to
``metrics.jsonl``. A diverged loss or a net stuck at chance ends the run with a status, not a
crash. Checkpoints resume exactly.

Under ``torchrun`` every rank runs this loop on its own shard of the data, draws the same plan
and averages the gradients that exist (:mod:`grownet.train.distributed`); the global batch is
``batch_size * world_size``. Logged loss, accuracy and images/s are over all ranks. Every rank
evaluates the whole split with rank 0's BatchNorm statistics. Rank 0 alone writes the run
directory and shows progress; every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from grownet import data as gdata
from grownet.graph import NetGraph
from grownet.graph.executor import GraphNet
from grownet.graph.plan import Planner, Sandwich, StepPlan
from grownet.provenance import environment
from grownet.train import checkpoint, distributed
from grownet.train.callbacks import Callback
from grownet.train.compute import step_flops
from grownet.train.config import ConfigError, TrainConfig
from grownet.train.evaluation import (
    correctness,
    evaluate,
    hits,
    prediction_loss,
    recalibrate_batchnorm,
)
from grownet.train.interrupt import StopRequest
from grownet.train.network import (
    build_graph,
    check_compile_support,
    load_matching,
    make_optimizer,
)
from grownet.train.progress import Progress, bits
from grownet.train.resume import check_fresh_start, check_resume
from grownet.train.rundir import RunDir, run_path
from grownet.train.verdict import (
    CONVERGED,
    DIVERGED,
    INTERRUPTED,
    NOT_CONVERGED,
    TrainResult,
    at_chance,
    converged,
)
from grownet.train.window import DisplayWindow


def _name_part(text: str) -> str:
    """A filename-safe piece of a run name: the last path component of what a name holds.

    >>> _name_part("csv:/data/cells.csv?target=kind"), _name_part("mnist")
    ('cells.csv', 'mnist')
    """
    tail = text.split("?", 1)[0].rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", tail).strip("-.") or "data"


class Trainer:
    """Trains one graph under one :class:`TrainConfig`, writing ``runs/<name>/``.

    Example:
        >>> import tempfile
        >>> cfg = TrainConfig(model="convnet", dataset="digits", max_iter=20, test_interval=10,
        ...                   batch_size=32, base_lr=0.1, quiet=True, runs_dir=tempfile.mkdtemp())
        >>> Trainer(cfg).run().status in ("converged", "did not converge")
        True
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        graph: NetGraph | None = None,
        init_state: Mapping[str, Tensor] | None = None,
        fixed_dropin_q: Mapping[str, float] | None = None,
        sandwich: Sandwich | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        """``init_state`` starts a fresh run from these weights (a state dict of an executor of
        ``graph``, or of one it grew from: new nodes keep their initialisation);
        ``fixed_dropin_q`` holds those DropIn nodes at one ratio (a DropIn ratio sweep);
        ``sandwich`` trains its nodes at one of its ratios a step (a one-shot sweep);
        ``callbacks`` see every evaluation and the end of the run (pruning, reports)."""
        self.config = config
        self.callbacks = list(callbacks)
        self.fixed_dropin_q = dict(fixed_dropin_q or {})
        self.sandwich = sandwich
        self.world = distributed.current_world()
        self.device = distributed.rank_device(config.device, self.world)
        if config.compile:
            check_compile_support(self.device)
        if self.world.distributed and self.device.type == "cuda":
            # before anything touches CUDA (pinned copies included): else every rank would also
            # open a context on GPU 0
            torch.cuda.set_device(self.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        cuda = self.device.type == "cuda"
        self.amp = cuda if config.amp is None else (config.amp and cuda)
        if not cuda:
            # Deep stacks with small Gaussian init make denormal activations, which run orders
            # of magnitude slower on x86 CPUs; flushing them to zero changes no result we report.
            torch.set_flush_denormal(True)
        torch.manual_seed(config.seed)
        self.dataset = gdata.load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            download=config.download,
            train_size=config.train_size,
            val_size=config.val_size,
            seed=config.seed,
            folds=config.folds,
            fold=config.fold,
        )
        self.graph_given = graph is not None
        self.graph = graph or build_graph(config, self.dataset.in_shape, self.dataset.num_classes)
        self.graph.validate()
        # Channels-last convolutions measured about 2x faster for LeNet(10) on this project's
        # 2-core CPU, and they are the fast path for tensor cores on CUDA.
        images = len(self.graph.input_shape) == 3
        self.channels_last = images if config.channels_last is None else config.channels_last
        self.net = self._executor(self.graph)
        if init_state is not None:
            load_matching(self.net, init_state)
        self.planner = self._planner(self.graph)
        self.schedule = config.schedule()
        self.optimizer = make_optimizer(self.net, self.config)
        loader_options = {"device": self.device, "channels_last": self.channels_last}
        self.train_loader = gdata.make_loader(
            self.dataset.train,
            batch_size=config.batch_size,
            preprocess=self.dataset.preprocess,
            train=True,
            seed=config.seed,
            rank=self.world.rank,
            world_size=self.world.world_size,
            **loader_options,
        )
        self.test_loader = gdata.make_loader(
            self.dataset.val or self.dataset.test,
            batch_size=config.test_batch_size,
            preprocess=self.dataset.preprocess,
            train=False,
            **loader_options,
        )
        self.run_dir = RunDir(run_path(config.runs_dir, config.name or self._default_name()))
        self.iteration = 0
        self.trained_s = 0.0  # training seconds before this call (a resumed run's)
        self.started = time.perf_counter()
        self.extended = False  # this call trains a finished run on to a larger max_iter
        self.checkpointed: int | None = None  # the iteration of the run's checkpoint, if any
        self.window = DisplayWindow(self.device)
        self.scores: dict[str, float | None] = dict.fromkeys(("best", "last_acc", "last_loss"))
        self.signal: dict[str, float] = {}  # the last evaluation's, layer by layer

    def _executor(self, graph: NetGraph) -> GraphNet:
        """``graph``'s executor on this run's device and memory format, compiled if asked."""
        memory = torch.channels_last if self.channels_last else torch.preserve_format
        net = GraphNet(graph).to(self.device, memory_format=memory)
        if self.config.compile:
            net.compile_segments()
        return net

    def _planner(self, graph: NetGraph) -> Planner:
        return Planner(graph, seed=self.config.seed, fixed_q=self.fixed_dropin_q,
                       sandwich=self.sandwich)  # fmt: skip

    @property
    def label(self) -> str:
        """The run's short name for progress bars: its folder and the one holding it
        (``stages/stage_1``, ``trials/3``, ``runs/lenet-mnist-s0``)."""
        return "/".join(self.run_dir.path.parts[-2:])

    def _default_name(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        # "csv:/data/t.csv?target=y" or "import:pkg.mod:fn" must not become nested folders
        model, dataset = (_name_part(x) for x in (self.config.model, self.config.dataset))
        return f"{model}-{dataset}-s{self.config.seed}-{stamp}"

    # ------------------------------------------------------------------ steps

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _set_lr(self, iteration: int) -> float:
        lr = self.schedule(self.config.schedule_offset + iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        return lr

    def evaluate(self, plan: StepPlan) -> tuple[float, float]:
        """Loss and accuracy over the whole evaluation split, in eval mode (see
        :func:`grownet.train.evaluation.evaluate`); keeps the layers' signal in ``signal``."""
        loss, accuracy, self.signal = evaluate(
            self.net, self.test_loader, plan, autocast=self._autocast, world=self.world,
            device=self.device,
        )  # fmt: skip
        return loss, accuracy

    @property
    def eval_split(self) -> str:
        """The split every evaluation and decision reads: ``"val"`` when the run holds one
        out (``val_size``, or a dataset's own ``val/``), else ``"test"``."""
        return "val" if self.dataset.val is not None else "test"

    def correctness(self, split: str = "eval", *, plan: StepPlan | None = None) -> Tensor:
        """Per-sample correctness (bool, on the CPU) of the current net in eval mode under
        ``plan`` (default: the plan of the last step): what paired comparisons of two nets
        use. ``split``: ``"eval"``, the split evaluations read (:attr:`eval_split`), or
        ``"test"``, the test split even when a validation split takes the decisions (read
        once, for a reported network)."""
        if split not in ("eval", "test"):
            raise ValueError(f'split must be "eval" or "test", got {split!r}')
        loader = self.test_loader
        if split == "test" and self.eval_split != "test":
            loader = gdata.make_loader(
                self.dataset.test,
                batch_size=self.config.test_batch_size,
                preprocess=self.dataset.preprocess,
                train=False,
                device=self.device,
                channels_last=self.channels_last,
            )
        if plan is None:
            plan = self.planner.draw(max(0, self.iteration - 1))
        return correctness(self.net, loader, plan, autocast=self._autocast)

    def recalibrate(self, plan: StepPlan, *, samples: int) -> int:
        """Re-estimate every BatchNorm's statistics under ``plan`` from the next ``samples``
        training samples (whole batches); returns how many were read. A one-shot sweep's
        narrower or shallower network feeds its BatchNorms other statistics than the network
        whose steps set them (Yu & Huang, 2019), and reads wrong until they are re-estimated."""
        samples = min(samples, len(self.dataset.train))  # a second pass adds nothing
        batches = max(1, math.ceil(samples / self.config.batch_size))
        return recalibrate_batchnorm(
            self.net, (self.train_loader.next_batch() for _ in range(batches)), plan,
            autocast=self._autocast,
        )  # fmt: skip

    def _record_plan(self, plan: StepPlan) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if plan.dropin_q:
            record["dropin_q"] = {k: round(v, 6) for k, v in plan.dropin_q.items()}
        if self.planner.gated_units:
            record["active_units"] = self.planner.gated_units - len(plan.closed_gates)
        return record

    # ------------------------------------------------------------------ run

    def run(
        self, *, resume: bool = True, overwrite: bool = False, extend: bool = False
    ) -> TrainResult:
        """Train to ``max_iter`` or a verdict, as the one writer of the run directory.

        ``resume`` continues the run's checkpoint when there is one (settings that change
        results must match it); ``overwrite`` first deletes what the run directory holds (the
        user named it for that); ``extend`` lets a resumed run train on to a larger
        ``max_iter``. Otherwise a directory that already holds a run is never destroyed.
        Under torchrun the process group lives for this call (unless the caller set one up).
        """
        if overwrite and self.world.is_main:
            self.run_dir.refuse_foreign()
        lock = self.run_dir.lock() if self.world.is_main else contextlib.nullcontext()
        with distributed.process_group(self.world, self.device), lock:
            return self._run(resume=resume, overwrite=overwrite, extend=extend)

    def _run(self, *, resume: bool, overwrite: bool, extend: bool) -> TrainResult:
        cfg, main = self.config, self.world.is_main
        if overwrite and main:
            self.run_dir.clear()
        if overwrite and self.world.distributed:
            dist.barrier()  # no rank may look for a checkpoint rank 0 is deleting
        ckpt = self.run_dir.file("checkpoint.pt")
        if main:  # the run's one writer: what a save killed mid-write left is garbage now
            checkpoint.remove_torn_saves(ckpt)
        resuming = resume and ckpt.exists()
        if resuming:
            self._restore(ckpt, extend=extend)
        else:
            check_fresh_start(self.run_dir, self.config.to_dict(), resume=resume)
            self._start_fresh()
        if self.world.distributed:
            distributed.check_agreement(
                self.iteration,
                what="the iteration to start from",
                fix=f"every rank must see the same {self.run_dir.path} (a shared file system)",
            )
            # Equal seeds (or one checkpoint) already make the ranks start alike; broadcasting
            # rank 0's weights, as DDP does, makes it so whatever an initialiser does.
            distributed.broadcast(self.net.state_dict().values())
        if resuming and (earlier := self._finished_result()) is not None:
            return earlier
        progress = Progress(total=cfg.max_iter, initial=self.iteration, quiet=cfg.quiet or not main,
                            split=self.eval_split, name=self.label)  # fmt: skip
        # A resumed run's clock goes on from the checkpoint: wall times cover the whole run.
        self.started, status, reason = time.perf_counter() - self.trained_s, None, ""
        stop = StopRequest(announce=main)
        try:
            with stop.installed():
                status, reason = self._loop(ckpt, progress, stop)
        except KeyboardInterrupt:
            # A second Ctrl-C, anywhere in a step: nothing half-done is saved; the last
            # checkpoint (or the start) is what a rerun resumes from.
            status = INTERRUPTED
            reason = f"stopped at once at iteration {self.iteration}; {self._resumes_from()}"
        finally:
            progress.close()
        if status is None:
            acc = self.scores["last_acc"]
            ok = acc is not None and converged(acc, self.dataset.num_classes,
                                               loss=self._token_loss())  # fmt: skip
            status = CONVERGED if ok else NOT_CONVERGED
        if status != INTERRUPTED:
            self._save(ckpt)
        result = TrainResult(
            status=status,
            iterations=self.iteration,
            final_test_accuracy=self.scores["last_acc"],
            best_test_accuracy=self.scores["best"],
            final_test_loss=self.scores["last_loss"],
            wall_time_s=time.perf_counter() - self.started,
            run_dir=str(self.run_dir.path),
            reason=reason,
            train_flops=self.iteration * step_flops(
                self.graph, batch_size=cfg.batch_size * self.world.world_size
            ),
        )
        if main:
            self.run_dir.write_json("result.json", result.__dict__)
            for callback in self.callbacks:
                callback.on_end(self, result)
        return result

    def _loop(self, ckpt: Path, progress: Progress, stop: StopRequest) -> tuple[str | None, str]:
        """The training steps; returns a verdict (status, reason) or ``(None, "")`` at the end.

        A stop request is honoured only between whole steps (logging, evaluation and the
        checkpoint of the step included), so the state saved is the state of an iteration.
        """
        cfg, window, scores = self.config, self.window, self.scores
        for plan in self._plans():
            it = plan.iteration
            lr = self._set_lr(it)
            x, y = self.train_loader.next_batch()
            with self._autocast():
                out = self.net(x, plan)
                loss = prediction_loss(out.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.world.distributed:
                distributed.average_gradients(self.net.parameters())
            self.optimizer.step()
            self.iteration = done = it + 1
            window.add(loss.detach(), hits(out.detach(), y).sum(), y.numel())
            agreed_stop = False  # under DDP a stop is agreed on at display records only
            if done % cfg.display_interval == 0 or done == cfg.max_iter:
                # Under DDP the ranks agree here on whether anyone was asked to stop.
                loss_sum, correct, seen, agreed_stop = self._window_totals(window, stop.requested)
                # the mean of the step losses: every step sees one batch's labels (a sample's
                # label, or each of a text window's tokens) on every rank
                mean_loss = loss_sum / max(1, seen // y.numel())
                self._log(
                    {
                        "kind": "train",
                        "iteration": done,
                        "loss": mean_loss,
                        "accuracy": correct / seen,
                        "lr": lr,
                        "images_per_s": seen / window.elapsed(),
                        "wall_time_s": time.perf_counter() - self.started,
                        **self._record_plan(plan),
                    }
                )
                progress.update(done, loss=mean_loss)
                window.reset()
                if not math.isfinite(mean_loss):
                    return DIVERGED, f"loss became {mean_loss} by iteration {done}"
            if done % cfg.test_interval == 0 or done == cfg.max_iter:
                loss_value, acc = self.evaluate(plan)
                scores.update(last_loss=loss_value, last_acc=acc)
                scores["best"] = acc if scores["best"] is None else max(scores["best"], acc)
                self._log(
                    {
                        "kind": "test",
                        "iteration": done,
                        "loss": loss_value,
                        "accuracy": acc,
                        **({"bits": bits(loss_value)} if self.dataset.per_token else {}),
                        "wall_time_s": time.perf_counter() - self.started,
                        "signal": self.signal,
                    }
                )
                token_loss = self._token_loss()
                progress.update(done, accuracy=acc, eval_loss=token_loss)
                patience = cfg.give_up_at_chance_after
                classes = self.dataset.num_classes
                if (patience is not None and done >= patience
                        and at_chance(acc, classes, loss=token_loss)):  # fmt: skip
                    # A language model is judged on its loss, so the reason names the loss.
                    score = (f"test accuracy {acc:.4f}" if token_loss is None
                             else f"test loss {token_loss:.4f} nats/token")  # fmt: skip
                    return NOT_CONVERGED, f"{score} still at chance at {done}"
                for callback in self.callbacks:
                    if (asked := callback.on_evaluate(self, done, acc)) is not None:
                        return asked.status, asked.reason
            if cfg.checkpoint_interval and done % cfg.checkpoint_interval == 0:
                self._save(ckpt)
            stopping = agreed_stop or (stop.requested and not self.world.distributed)
            if stopping and done < cfg.max_iter:
                self._save(ckpt)
                return INTERRUPTED, f"interrupted at iteration {done}"
        return None, ""

    def _resumes_from(self) -> str:
        if self.checkpointed is None:
            return "no checkpoint yet: a rerun starts again"
        return f"a rerun resumes from the checkpoint at iteration {self.checkpointed}"

    def _finished_result(self) -> TrainResult | None:
        """The saved result of a run that already ended (at ``max_iter`` or by a verdict);
        ``None`` when it has more to train (it was interrupted, or is being extended)."""
        if self.extended:
            return None
        try:
            saved = TrainResult(**self.run_dir.read_json("result.json"))
        except (OSError, ValueError, TypeError):
            return None  # absent or unreadable: the checkpoint decides
        if saved.status == INTERRUPTED or saved.iterations != self.iteration:
            return None
        return saved

    def _token_loss(self) -> float | None:
        """The last evaluation's loss where it judges the run (a language model's), else None."""
        return self.scores["last_loss"] if self.dataset.per_token else None

    def _window_totals(
        self, window: DisplayWindow, stop_asked: bool
    ) -> tuple[float, float, int, bool]:
        """A display window's summed step losses, correct answers and samples over all ranks,
        and whether any rank was asked to stop."""
        extra = torch.tensor([window.seen, float(stop_asked)], dtype=torch.float64)
        totals = torch.cat([torch.stack([window.loss.double(), window.correct.double()]),
                            extra.to(window.loss.device)])  # fmt: skip
        if self.world.distributed:
            dist.all_reduce(totals)
        loss_sum, correct_sum, seen_sum, asked = totals.tolist()
        return loss_sum, correct_sum, int(seen_sum), asked > 0

    def _log(self, record: dict[str, Any]) -> None:
        if self.world.is_main:
            self.run_dir.append_metrics(record)

    def _plans(self) -> Iterator[StepPlan]:
        for it in range(self.iteration, self.config.max_iter):
            plan = self.planner.draw(it)
            self.net.set_plan(plan)
            yield plan

    def _start_fresh(self) -> None:
        if not self.world.is_main:
            return
        self.run_dir.file("metrics.jsonl").unlink(missing_ok=True)
        self.run_dir.file("result.json").unlink(missing_ok=True)
        self.run_dir.write_json("config.json", self.config.to_dict())
        env = {**environment(self.device), "world_size": self.world.world_size}
        self.run_dir.write_json("env.json", env)
        self.graph.to_json(self.run_dir.file("graph.json"))
        self.run_dir.write_json("dataset.json", self.dataset.source)

    def _save(self, path: Path) -> None:
        """Rank 0 writes the checkpoint, after giving every rank its BatchNorm statistics (a
        collective: every rank must call it)."""
        if self.world.distributed:
            distributed.broadcast(self.net.buffers())
        if self.world.is_main:
            self._write_checkpoint(path)
        self.checkpointed = self.iteration

    def _write_checkpoint(self, path: Path) -> None:
        checkpoint.save(
            path,
            model=self.net,
            optimizer=self.optimizer,
            iteration=self.iteration,
            loader_state=self.train_loader.state_dict(),
            config=self.config.to_dict(),
            graph=self.graph.to_dict(),
            extra={
                "world_size": self.world.world_size,
                "wall_time_s": time.perf_counter() - self.started,
                "window": self.window.state_dict(),
                "scores": self.scores,
                # so a loader of the checkpoint (grownet export) plans it as it trained
                "fixed_dropin_q": self.fixed_dropin_q,
                "sandwich": None if self.sandwich is None else self.sandwich.to_dict(),
            },
        )

    def _restore(self, path: Path, *, extend: bool) -> None:
        state = checkpoint.load(path, map_location=self.device)
        now = self.config.to_dict()
        extensions = check_resume(
            self.run_dir.path, state["config"], now, iteration=state["iteration"], extend=extend
        )
        self.extended = len(extensions) > len(state["config"].get("extensions", []))
        self.config.extensions = extensions
        world_size = state["extra"].get("world_size", 1)
        if world_size != self.world.world_size:
            raise ConfigError(
                f"{self.run_dir.path} was trained by {world_size} process(es), this run has "
                f"{self.world.world_size}: its data order would change; resume it with "
                f"{world_size} process(es) in all, or use another --name"
            )
        graph = NetGraph.from_dict(state["graph"])
        if graph != self.graph and self.graph_given:
            raise ConfigError(
                f"{self.run_dir.path} holds a run of another network than the one given; "
                "use another --name, or --overwrite to replace that run"
            )
        if graph != self.graph:  # built from the config: the run's own graph wins
            self.graph = graph
            self.net = self._executor(graph)
            self.planner = self._planner(graph)
            # over the restored graph's parameters
            self.optimizer = make_optimizer(self.net, self.config)
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_loader.load_state_dict(state["loader"])
        checkpoint.set_rng_states(state["rng"])
        self.iteration = self.checkpointed = state["iteration"]
        extra = state["extra"]
        self.trained_s = extra.get("wall_time_s", 0.0)
        if "window" in extra:  # checkpoints before the window travelled start a new one
            self.window = DisplayWindow.from_state(extra["window"], self.device)
        self.scores.update(extra.get("scores", {}))
        if self.world.is_main:
            self.run_dir.truncate_metrics(self.iteration)
            if self.extended:
                self.run_dir.write_json("config.json", self.config.to_dict())


"""Data parallel on 2 gloo CPU processes on loopback, launched by torchrun as users launch it.

This file is also the worker script: ``torchrun ... test_distributed.py OUT`` runs
:func:`worker` on each rank, which trains a hand-built residual net with plan-aware gradient
averaging (writing what it saw to ``OUT/rank{r}.pt``) and then runs the trainer (a full run,
and a run stopped halfway and resumed) in the process group it set up. The tests compare
what the ranks wrote with each other and with a single process on the concatenated batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from grownet.cli import main
from grownet.errors import BadValueError
from grownet.graph import LayerSpec, NetGraph
from grownet.graph.executor import GraphNet
from grownet.graph.plan import Planner
from grownet.train import checkpoint, distributed
from grownet.train.config import ConfigError, TrainConfig
from grownet.train.distributed import World, current_world
from grownet.train.trainer import Trainer

SEED, STEPS, BATCH, WORLD = 0, 6, 8, 2  # planner seed 0 closes a different set each step


def residual_graph() -> NetGraph:
    """stem -> 3 x [conv-relu-conv branch, 1x1 shortcut, gated add p=0.5, relu] -> fc; no BN,
    so each rank's gradient depends on its own batch only and the sum can be checked."""
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[2, 6, 6]))
    x = g.add("stem", LayerSpec("conv", out_channels=4, kernel_size=3, padding=1), [x])
    for u in range(3):
        conv = LayerSpec("conv", out_channels=4, kernel_size=3, padding=1)
        b = g.chain(x, [(f"u{u}_conv1", conv), (f"u{u}_relu", LayerSpec("relu"))])
        b = g.add(f"u{u}_conv2", conv, [b])
        s = g.add(f"u{u}_short", LayerSpec("conv", out_channels=4, kernel_size=1), [x])
        gate = LayerSpec("gated_add", kind="depth_dropout", drop_prob=0.5)
        a = g.add(f"u{u}_add", gate, [b, s])
        x = g.add(f"u{u}_out", LayerSpec("relu"), [a])
    x = g.add("gap", LayerSpec("global_avgpool"), [x])
    x = g.add("fc", LayerSpec("linear", out_features=3), [x])
    g.add("output", LayerSpec("output"), [x])
    return g


def train_steps(rank: int | None) -> tuple[GraphNet, list[dict[str, Any]], list[tuple]]:
    """STEPS SGD steps; ``rank`` None: one process on the whole global batch, else this rank's
    half, with the gradients averaged over the ranks. Returns the net, each step's gradients
    and each step's closed gates."""
    torch.manual_seed(SEED)
    graph = residual_graph()
    net, planner = GraphNet(graph), Planner(graph, seed=SEED)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    data = torch.Generator().manual_seed(1)
    grads, closed = [], []
    for it in range(STEPS):
        x = torch.randn(WORLD * BATCH, 2, 6, 6, generator=data)
        y = torch.randint(0, 3, (WORLD * BATCH,), generator=data)
        if rank is not None:
            x, y = x[rank * BATCH : (rank + 1) * BATCH], y[rank * BATCH : (rank + 1) * BATCH]
        plan = planner.draw(it)
        loss = F.cross_entropy(net(x, plan), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if rank is not None:
            distributed.average_gradients(net.parameters())
        grads.append(
            {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()}
        )
        closed.append(plan.closed_gates)
        optimizer.step()
    return net, grads, closed


def trainer_config(out: Path, name: str, max_iter: int) -> TrainConfig:
    return TrainConfig(
        name=name,
        runs_dir=str(out),
        model="convnet",
        dataset="digits",
        batch_size=16,
        base_lr=0.05,
        max_iter=max_iter,
        test_interval=8,
        display_interval=4,
        checkpoint_interval=8,
        device="cpu",
        quiet=True,
    )


def worker(out: Path) -> None:
    """One rank's part of the tests (run by torchrun; see the module docstring)."""
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    net, grads, closed = train_steps(rank)
    torch.save(
        {"state": net.state_dict(), "grads": grads, "closed": closed}, out / f"rank{rank}.pt"
    )
    # The trainer inside a group the caller set up: it uses the group and leaves it.
    Trainer(trainer_config(out, "full", 24)).run()
    Trainer(trainer_config(out, "part", 16)).run()
    if rank == 0:  # a resumed run keeps the lines up to its checkpoint; a fresh one drops them
        with (out / "part" / "metrics.jsonl").open("a") as f:
            f.write('{"kind": "marker", "iteration": 0}\n')
    dist.barrier()
    Trainer(trainer_config(out, "part", 24)).run(extend=True)
    assert dist.is_initialized()
    dist.destroy_process_group()


def torchrun(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}"]
    command += ["--master_addr=127.0.0.1", f"--master_port={port}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("ddp")
    torchrun(__file__, str(out))
    return out, [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_ranks_hold_identical_parameters(ranks):
    _, (a, b) = ranks
    assert a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])


def test_different_steps_skip_different_branches_without_error(ranks):
    _, (a, b) = ranks
    assert a["closed"] == b["closed"]  # every rank drew the same plan
    assert len(set(a["closed"])) > 2 and any(a["closed"])
    for step, closed in enumerate(a["closed"]):
        for unit in range(3):
            skipped = f"u{unit}_add" in closed
            assert (a["grads"][step][f"layers.u{unit}_conv1.weight"] is None) == skipped


def test_averaged_gradients_match_one_process_on_the_concatenated_batch(ranks):
    _, (a, b) = ranks
    net, grads, closed = train_steps(rank=None)
    assert closed == a["closed"]
    for step in range(STEPS):
        for name, expected in grads[step].items():
            for rank in (a, b):
                got = rank["grads"][step][name]
                if expected is None:
                    assert got is None, (step, name)
                else:
                    torch.testing.assert_close(got, expected, msg=f"step {step}, {name}")
    for name, value in net.state_dict().items():
        torch.testing.assert_close(a["state"][name], value, msg=name)


def records(run: Path) -> list[tuple]:
    lines = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return [(r["kind"], r["iteration"], r.get("loss"), r.get("accuracy")) for r in lines]


def test_trainer_resumes_exactly_under_ddp(ranks):
    out, _ = ranks
    full, part = records(out / "full"), records(out / "part")
    assert ("marker", 0, None, None) in part  # the second run resumed at 16
    assert [r for r in part if r[0] != "marker"] == full  # no line twice: rank 0 alone wrote
    assert [r[1] for r in full if r[0] == "train"] == [4, 8, 12, 16, 20, 24]
    assert json.loads((out / "full" / "env.json").read_text())["world_size"] == 2


def test_cli_under_torchrun_trains_and_rank0_alone_writes(tmp_path, capsys):
    argv = [
        "train", "--model", "convnet", "--dataset", "digits", "--device", "cpu",
        "--batch-size", "16", "--base-lr", "0.1", "--max-iter", "36", "--test-interval", "12",
        "--display-interval", "12", "--runs-dir", str(tmp_path), "--name", "ddp", "--quiet",
    ]  # fmt: skip
    done = torchrun("-m", "grownet", *argv)
    assert done.stdout.count("after 36 iterations") == 1, done.stdout
    run = tmp_path / "ddp"
    for name in ("config.json", "env.json", "graph.json", "result.json", "checkpoint.pt"):
        assert (run / name).exists(), name
    assert [(k, i) for k, i, *_ in records(run)] == [
        ("train", 12), ("test", 12), ("train", 24), ("test", 24), ("train", 36), ("test", 36)
    ]  # fmt: skip
    assert json.loads((run / "env.json").read_text())["world_size"] == 2
    assert checkpoint.load(run / "checkpoint.pt")["extra"]["world_size"] == 2
    # one process cannot resume it: its data order would differ
    assert main([*argv, "--max-iter", "48", "--extend"]) == 2
    assert "trained by 2 process(es), this run has 1" in capsys.readouterr().err


# ---------------------------------------------------------------- in one process


def test_world_from_the_environment():
    assert current_world({}) == World()
    env = {"RANK": "1", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}
    assert current_world(env) == World(rank=1, world_size=2, local_rank=0)
    with pytest.raises(ConfigError, match=r"RANK must be < WORLD_SIZE \(2\), got 2"):
        current_world({"RANK": "2", "WORLD_SIZE": "2"})


@pytest.mark.parametrize(
    ("device", "match"),
    [("cuda:1", "each rank uses cuda:LOCAL_RANK"), ("mps", "runs on cpu or cuda")],
)
def test_rank_device_mistakes(device, match):
    if device.startswith("cuda") and not torch.cuda.is_available():
        match = "no CUDA device is available"
    if device == "mps" and not torch.backends.mps.is_available():
        match = "MPS is not available"
    with pytest.raises(BadValueError, match=match):
        distributed.rank_device(device, World(rank=0, world_size=2))


def test_buckets_keep_order_and_split_by_size_and_dtype():
    ts = [torch.zeros(4), torch.zeros(4), torch.zeros(10), torch.zeros(2, dtype=torch.int64)]
    sizes = [[t.numel() for t in b] for b in distributed._buckets(ts, limit=32)]
    assert sizes == [[4, 4], [10], [2]]


if __name__ == "__main__":
    worker(Path(sys.argv[1]))

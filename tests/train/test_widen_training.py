"""A network widened gradually trains under the trainer: the executor hands its new units
over on the plan's schedule."""

import json

import torch

from grownet.graph.executor import GraphNet
from grownet.graph.widen import widen_gradually
from grownet.train.config import TrainConfig
from grownet.train.trainer import Trainer
from grownet.zoo import build


def test_the_trainer_mixes_new_units_in_on_schedule(tmp_path):
    torch.manual_seed(0)
    net = GraphNet(build("convnet", widths=(8, 16)))
    wide = widen_gradually(net, "conv1_1", 8, dropin_length=20, start=0)
    config = TrainConfig(name="w", runs_dir=str(tmp_path), model="convnet", dataset="digits",
                         max_iter=30, test_interval=30, display_interval=5, batch_size=16,
                         device="cpu", quiet=True)  # fmt: skip
    trainer = Trainer(config, graph=wide.graph, init_state=wide.state_dict())
    assert trainer.run().iterations == 30
    records = [json.loads(x) for x in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    mixers = wide.graph.nodes_of("width_dropin")
    qs = [[r["dropin_q"][m] for m in mixers] for r in records if r["kind"] == "train"]
    assert qs[0] == [1 - 4 / 20] * len(mixers) and qs[-1] == [0.0] * len(mixers)
    # the executor handed the plan's q to the layers: every new unit is in at the end
    assert all(trainer.net.layers[m].q == 0.0 for m in mixers)

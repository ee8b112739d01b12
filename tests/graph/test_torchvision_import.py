"""Every torchvision classification network imported (all 80 of torchvision 0.29): the graph
computes what the module does, in eval mode at the network's natural input size and at a small
one, and in train mode at the small one (train mode differs from eval only in batchnorm and
dropout, not in sizes).

"Equal in train mode" for random ops: dropout draws its masks in the same order from the same
seed in both; stochastic depth, which torchvision draws per sample and a graph per batch (so it
can skip the branch), is compared at probability 0 (both the identity on the branch), its eval
rule at the network's own probability.
"""

import gc

import pytest
import torch
import torchvision
from torchvision.ops import StochasticDepth, stochastic_depth

from grownet.graph.executor import GraphNet
from grownet.graph.fx_import import import_module
from grownet.graph.fx_windows import Tracer
from grownet.layers import GatedAdd

NAMES = torchvision.models.list_models(module=torchvision.models)
AUX = ("aux1", "aux2", "AuxLogits")  # GoogLeNet's and Inception's training-only classifiers


def _sizes(name: str) -> list[tuple[int, dict, int]]:
    """(input size, builder arguments, batch): the size the architecture is defined at (its
    default ``image_size``: 224, Inception's 299), then a small size where the architecture
    allows one (the smallest its default weights take; a ViT any multiple of its patch; a Swin
    pads any size to its windows: at 72 pixels, padded shifted windows and odd patch merges;
    MaxViT's partitions fix its size, so it is compared at 224 alone).

    Some default weights were trained larger (EfficientNet-B7 at 600, ViT-H/14 at 518): the
    graph does not depend on it, and running those sizes here would take many minutes."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    natural = 299 if name == "inception_v3" else 224
    small = max(32, weights.meta["min_size"][0])
    if name.startswith("vit_"):
        patch = int(name.rsplit("_", 1)[1])
        return [(natural, {}, 1), (2 * patch, {"image_size": 2 * patch}, 2)]
    if name.startswith("swin_"):
        return [(natural, {}, 1), (72, {}, 2)]
    if name == "maxvit_t":  # its partitions divide the map at 224 only (7 x 2^5)
        return [(natural, {}, 2)]
    return [(natural, {}, 1), (small, {}, 2)]


def _resized(name, module, kwargs):
    """``name`` built with ``kwargs`` holding ``module``'s tensors (not copies), a fresh
    position embedding where its size differs: initialising a ViT-H twice takes seconds."""
    with torch.device("meta"):
        small = torchvision.models.get_model(name, **kwargs)
    state = dict(module.state_dict())
    for key, value in small.state_dict().items():
        if state[key].shape != value.shape:
            state[key] = torch.randn(value.shape) * 0.02
    small.load_state_dict(state, assign=True)
    return small


def _compare(module, net, size, batch):
    """Train mode (eval was checked by the import); see the module docstring for random ops."""
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    for m in module.modules():
        if isinstance(m, StochasticDepth):
            m.p = 0.0
    for m in net.modules():
        if isinstance(m, GatedAdd):
            m.drop_prob = 0.0
    for aux in AUX:  # their dropout would draw masks first
        if hasattr(module, aux):
            setattr(module, aux, None)
    module.train(), net.train()
    with torch.no_grad():
        torch.manual_seed(2)
        want = module(x)
        torch.manual_seed(2)
        got = net(x)
    want = getattr(want, "logits", want)  # GoogLeNet and Inception return a named tuple
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_every_torchvision_network_computes_what_the_module_does(name):
    module, built_with = None, None
    sizes = _sizes(name)
    for size, kwargs, batch in sizes:
        if module is None:
            torch.manual_seed(0)
            module, built_with = torchvision.models.get_model(name, **kwargs), kwargs
        elif kwargs != built_with:  # a ViT at a smaller size: the same weights, its positions
            module, built_with = _resized(name, module, kwargs), kwargs
        # the import compares the graph with the module in eval mode, or raises
        graph, state = import_module(module, (3, size, size), name=name)
        net = GraphNet.with_state(graph, state)
        # every weight but the auxiliary classifiers', which the graph leaves out
        aux = [getattr(module, a) for a in AUX if getattr(module, a, None) is not None]
        kept = {id(p) for a in aux for p in a.parameters()}
        expected = sum(p.numel() for p in module.parameters() if id(p) not in kept)
        assert graph.num_params() == expected == sum(p.numel() for p in net.parameters())
        if (size, kwargs, batch) == sizes[-1]:  # train mode once, at the smaller size
            _compare(module, net, size, batch)
        del net, graph, state
        gc.collect()


@pytest.mark.parametrize("name", ["swin_t", "swin_v2_t", "maxvit_t"])
def test_window_attention_networks_keep_their_stochastic_depth_as_drop_path(name):
    """Each residual branch's stochastic depth is a ``drop_path`` gated add of its own
    probability, in order, so a dropped branch is skipped."""
    module = torchvision.models.get_model(name)
    size = 224 if name == "maxvit_t" else 72
    graph, _ = import_module(module, (3, size, size), name=name)
    gated = [graph.spec(n).params for n in graph.topological_order()
             if graph.op(n) == "gated_add"]  # fmt: skip
    # the probabilities torchvision's trace passes to stochastic_depth, call by call (a block
    # may apply one StochasticDepth module to two branches)
    traced = Tracer().trace(module).nodes
    want = [n.args[1] for n in traced if n.target is stochastic_depth]
    assert {p["kind"] for p in gated} == {"drop_path"}
    assert [p["drop_prob"] for p in gated] == pytest.approx(want) and len(want) > 10

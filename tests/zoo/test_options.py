"""The registry and option checking: one-line errors that name the option and what was given."""

import pytest

from grownet.zoo import MODELS, build, options


def test_unknown_model_lists_known_ones():
    with pytest.raises(
        ValueError, match=r"unknown model 'resnet9'; known models: alexnet, .*vgg8"
    ) as err:
        build("resnet9")
    assert "\n" not in str(err.value)


def test_unknown_and_missing_options():
    with pytest.raises(ValueError, match=r"model 'lenet' has no option 'depth'; options: in_shape"):
        build("lenet", depth=3)
    with pytest.raises(ValueError, match=r"model 'cifar_resnet' needs option 'depth'"):
        build("cifar_resnet")
    with pytest.raises(ValueError, match=r"model 'resnet56' fixes depth=56; use 'cifar_resnet'"):
        build("resnet56", depth=20)


def test_options_lists_defaults_and_aliases_hide_fixed_ones():
    assert options("cifar10_11layer")["dropin_length"] == 16000
    assert "depth" not in options("resnet18") and options("resnet18")["num_classes"] == 1000
    builders = ["lenet", "lenet2n", "cifar10_3layer", "cifar10_11layer", "alexnet", "alexnet13"]
    builders += ["vgg", "vgg16_dropin", "cifar_resnet", "imagenet_resnet"]
    assert set(MODELS) >= set(builders)


BAD = [
    ("lenet2n", {"n": 0}, "lenet2n: n must be an integer >= 1, got 0"),
    ("lenet2n", {"n": 2.5}, "n must be an integer >= 1, got 2.5"),
    ("lenet2n", {"n": 2, "dropin": "yes"}, "dropin must be True or False, got 'yes'"),
    ("lenet", {"init": "he"}, "lenet: init must be one of 'default', 'kaiming'"),
    ("lenet", {"in_shape": (28, 28)}, "in_shape must be (channels, height, width) > 0, got (28,"),
    ("cifar10_3layer", {"pool_kernel": 4}, "pool_kernel must be one of 2, 3, got 4"),
    ("cifar10_11layer", {"dropin_length": -5}, "dropin_length must be an integer >= 1, got -5"),
    ("cifar10_11layer", {"mxscale": 0.5}, "mxscale must be a number >= 1 (1: no scaling), got 0.5"),
    ("alexnet", {"variant": "vgg"}, "variant must be one of 'bvlc_alexnet', 'caffenet', got 'vgg'"),
    ("alexnet13", {"fc7_regularizer": "dropin"}, "has no option 'fc7_regularizer'"),
    ("vgg", {"depth": 17}, "vgg: depth must be one of 8, 11, 13, 16, 19, got 17"),
    ("vgg16_dropin", {"dropout": 1.0}, "vgg16_dropin: dropout must be a number in [0, 1), got 1.0"),
    ("cifar_resnet", {"depth": 21}, "depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got 21"),
    ("resnet20", {"shortcut": "C"}, "cifar_resnet: shortcut must be one of 'A', 'identity'"),
    ("resnet20", {"depth_dropout": 1.0}, "depth_dropout must be a number in [0, 1), got 1.0"),
    ("resnet20", {"stochastic_depth": "exp"}, "one of None, 'linear', 'uniform', got 'exp'"),
    ("resnet20", {"p_last": 0}, "cifar_resnet: p_last must be a number in (0, 1], got 0"),
    ("resnet20", {"mode": "drop"}, "mode must be one of 'skip', 'mask', got 'drop'"),
    ("resnet20", {"depth_dropout": 0.5, "stochastic_depth": "linear"}, "not both"),
    ("imagenet_resnet", {"depth": 20}, "depth must be one of 18, 34, 50, 101, 152, got 20"),
    ("resnet18", {"shortcut": "A"}, "imagenet_resnet: shortcut must be one of 'B', 'conv1x1'"),
]


@pytest.mark.parametrize(("name", "opts", "message"), BAD)
def test_bad_options_say_what_was_given(name, opts, message):
    with pytest.raises(ValueError) as err:
        build(name, **opts)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_in_shape_accepts_cli_strings_and_too_small_inputs_fail_naming_the_node():
    assert build("lenet", in_shape="1x32x32").shapes()["pool2"] == (50, 5, 5)
    with pytest.raises(ValueError, match="node 'conv2'"):
        build("lenet", in_shape=(1, 10, 10))

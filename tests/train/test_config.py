import pytest

from grownet.train.config import ConfigError, TrainConfig


def test_toml_with_train_table_and_model_options(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'paper = "ignored annotation"\nmodel = "lenet2n"\n'
        "[train]\nmax_iter = 200\nbase_lr = 1\n[model_options]\nn = 3\n"
    )
    config = TrainConfig.from_toml(path, seed=4)
    assert (config.model, config.max_iter, config.seed) == ("lenet2n", 200, 4)
    assert config.base_lr == 1.0 and isinstance(config.base_lr, float)
    assert config.model_options == {"n": 3}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"max_iters": 5}, "unknown key 'max_iters'"),
        ({"max_iter": "5"}, "max_iter must be int, got '5'"),
        ({"max_iter": True}, "max_iter must be int, got True"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda, cuda:N or mps"),
        ({"device": "cuda:abc"}, "device must be auto"),
        ({"threads": -1}, "threads must be >= 1"),
        ({"display_interval": 0}, "display_interval must be >= 1"),
        ({"lr_policy": "multistep"}, "multistep policy needs stepvalues"),
        ({"power": -1.0}, "power must be >= 0"),
        ({"warmup": -5}, "warmup must be >= 0"),
        ({"give_up_at_chance_after": -1}, "give_up_at_chance_after must be >= 0"),
        ({"momentum": 0.0, "nesterov": True}, "nesterov needs momentum"),
    ],
)
def test_mistakes_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize(
    ("text", "match"), [("max_iter = ", "not valid TOML"), (None, "does not exist")]
)
def test_bad_files(tmp_path, text, match):
    path = tmp_path / "run.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_toml(path)


def test_round_trip_through_dict():
    config = TrainConfig(model="lenet2n", model_options={"n": 2}, stepvalues=[1, 2])
    assert TrainConfig.from_dict(config.to_dict()) == config

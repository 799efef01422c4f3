import json

import pytest

from deepfake_detect.core.config import ConfigError, TrainConfig, config_from_dict, load_config


def test_precedence_file_then_flags_then_set(tmp_path):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"epochs": 7, "lr": 0.5, "batch_size": 8}))
    cfg = load_config(cfg_file, {"epochs": 3, "lr": None}, ["batch_size=4", "hflip=false"])
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.hflip) == (3, 0.5, 4, False)


def test_toml_file(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text('model = "compact-npr"\nclass_names = ["REAL", "FAKE"]\n')
    cfg = load_config(path)
    assert cfg.model == "compact-npr" and cfg.class_names == ("REAL", "FAKE")


@pytest.mark.parametrize(
    "sets, message",
    [
        (["epochz=3"], "unknown config key"),
        (["epochs=three"], "epochs expects int"),
        (["hflip=maybe"], "hflip expects true or false"),
        (["optimizer=lbfgs"], "optimizer must be one of"),
        (["lr"], "expects name=value"),
        (["epochs=0"], "epochs must be at least 1"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_config(sets=sets)


def test_optional_fields_accept_none_and_values():
    cfg = load_config(sets=["image_size=96", "train_limit=none"])
    assert cfg.image_size == 96 and cfg.train_limit is None


def test_round_trip_through_dict():
    cfg = TrainConfig(epochs=2, class_names=("r", "f"))
    assert config_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().epochs = 3  # type: ignore[misc]


def test_data_comes_from_the_environment_only_when_the_caller_passes_it():
    from deepfake_detect.core.config import load_config

    assert load_config(env={"DEEPFAKE_DATA": "/data/faces"}).data == "/data/faces"
    assert (
        load_config(flags={"data": "/elsewhere"}, env={"DEEPFAKE_DATA": "/data/faces"}).data == "/elsewhere"
    )
    assert load_config(env={}).data is None
    with pytest.raises(ConfigError, match="DEEPFAKE_DATA"):
        TrainConfig().data_folder()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"hflip": "false"}, r"^hflip expects true or false \(a bool\); got 'false' \(str\)$"),
        ({"epochs": "3"}, r"^epochs expects int; got '3' \(str\)$"),
        ({"epochs": 3.0}, r"^epochs expects int; got 3.0 \(float\)$"),
        ({"epochs": True}, r"^epochs expects int; got True \(bool\)$"),
        ({"lr": "0.1"}, r"^lr expects float; got '0.1' \(str\)$"),
        ({"image_size": "96"}, r"^image_size expects int or None; got '96' \(str\)$"),
        ({"model": 3}, r"^model expects str; got 3 \(int\)$"),
        ({"aug_rescale": (0.5,)}, r"^aug_rescale expects 2 values; got \(0.5,\)$"),
        ({"aug_jpeg_quality": (30, "95")}, r"^aug_jpeg_quality expects int values; got \(30, '95'\)$"),
        ({"class_names": "real,fake"}, r"^class_names expects 2 values; got 'real,fake'$"),
    ],
)
def test_the_dataclass_checks_its_own_types_with_one_line(changes, message):
    # Python callers skip load_config's parsing: the dataclass itself refuses a value of the wrong type.
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_the_dataclass_takes_what_python_callers_naturally_pass(tmp_path):
    import numpy as np

    cfg = TrainConfig(
        runs_dir=tmp_path, lr=1, seed=np.int64(3), aug_rescale=[0.25, 2], weight_decay=np.float32(0)
    )
    assert cfg.runs_dir == str(tmp_path) and cfg.lr == 1 and cfg.aug_rescale == (0.25, 2)
    assert type(cfg.seed) is int and type(cfg.weight_decay) is float
    json.dumps(cfg.to_dict())  # still JSON as the run folder writes it
    # The command line's strings are still parsed before the dataclass sees them.
    assert load_config(sets=["epochs=3", "hflip=false", "aug_rescale=0.25,2"]).replace(lr=0.5) == TrainConfig(
        epochs=3, hflip=False, aug_rescale=(0.25, 2.0), lr=0.5
    )

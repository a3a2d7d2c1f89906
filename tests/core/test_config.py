"""Config: YAML, options, overrides, and one-line errors naming the key and its source."""

import pytest

from defectkd.core.config import build_config, parse_overrides
from defectkd.core.errors import ConfigError
from defectkd.tasks.segment.config import SegmentTrainConfig
from tests.helpers import REPO


def test_precedence_file_option_override(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data: a\nepochs: 3\nlr: 0.1\n")
    cfg = build_config(SegmentTrainConfig, f, {"epochs": 7, "model": None}, ["lr=0.01", "loss=ce+dice"])
    assert (cfg.data, cfg.epochs, cfg.lr, cfg.loss, cfg.model) == ("a", 7, 0.01, "ce+dice", "mcff-l")


def test_unknown_key_names_key_and_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data: a\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'learning_rate'"):
        build_config(SegmentTrainConfig, f)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"override: key 'epochs'.*'ten'"):
        build_config(SegmentTrainConfig, None, {"data": "a"}, ["epochs=ten"])


def test_missing_required_key():
    with pytest.raises(ConfigError, match="required key 'data'"):
        build_config(SegmentTrainConfig, None, {})


def test_bad_yaml_and_missing_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        build_config(SegmentTrainConfig, f)
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        build_config(SegmentTrainConfig, tmp_path / "nope.yaml")


def test_override_parsing():
    assert parse_overrides(["a=1", "b=0.5", "c=true", "d=ce+dice", "e="]) == {
        "a": 1, "b": 0.5, "c": True, "d": "ce+dice", "e": None}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["epochs"])


def test_shipped_configs_validate():

    for path in (REPO / "configs").glob("*.yaml"):
        cfg = build_config(SegmentTrainConfig, path, {"data": "x"})
        assert cfg.model  # every shipped preset is a valid config


@pytest.mark.parametrize(("epochs", "warmup"), [(240, 20), (100, 8), (400, 20), (15, 1), (30, 2)])
def test_dkd_recipe_warms_up_over_a_twelfth_of_the_run(epochs, warmup):
    from defectkd.tasks.classify.config import DistillClassifyConfig
    from defectkd.tasks.segment.config import DistillSegmentConfig

    for config in (DistillClassifyConfig, DistillSegmentConfig):
        cfg = config(data="x", teacher="t", method="dkd", epochs=epochs)
        assert cfg.losses[0].params["warmup"] == warmup  # DKD's code: 20 of CIFAR's 240 epochs
    explicit = DistillClassifyConfig(data="x", teacher="t", method="dkd", epochs=15,
                                     losses=[{"method": "dkd", "params": {"warmup": 5}}])
    assert explicit.losses[0].params["warmup"] == 5


def test_yaml_reads_on_and_no_as_words_like_yaml_1_2(tmp_path):
    """A loss term's `on: features` stays a key (PyYAML's 1.1 rules made it True); only true/false are booleans."""
    from defectkd.core.config import load_yaml, parse_overrides

    f = tmp_path / "c.yaml"
    f.write_text("losses:\n  - {method: mgd, on: features, weight: 1.0}\nchannels_last: false\nname: no\n")
    assert load_yaml(f) == {"losses": [{"method": "mgd", "on": "features", "weight": 1.0}], "channels_last": False,
                            "name": "no"}
    assert parse_overrides(["cache=true", "name=off", "lr=0.01"]) == {"cache": True, "name": "off", "lr": 0.01}


def _saved_run(tmp_path):
    """A run folder as `resolve_run` finds it: config.yaml as the engine writes it, and a last.pt."""
    import yaml

    run = tmp_path / "runs" / "segment" / "r"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.pt").write_bytes(b"not read before the recipe check")
    saved = build_config(SegmentTrainConfig, None, {"data": "d", "model": "mcff-edge-n", "epochs": 3, "ema": 0.9})
    (run / "config.yaml").write_text(yaml.safe_dump(saved.model_dump(), sort_keys=False))
    return run


@pytest.mark.parametrize(("options", "overrides", "key"), [
    ({"model": "mcff-l"}, [], "model"), ({}, ["ema=0"], "ema"), ({"imgsz": 128}, [], "imgsz"),
    ({}, ["lr=0.01"], "lr"), ({"name": "other"}, [], "name")])
def test_resume_refuses_another_recipe_and_leaves_the_run_alone(tmp_path, options, overrides, key):
    from defectkd import api

    run = _saved_run(tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=rf"config\.yaml: {key} is .* in this run; resuming with {key}="):
        api.train("segment", resume=run, overrides=overrides, **options)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_may_train_longer_elsewhere(tmp_path):
    from defectkd.core.config import check_resume, load_yaml

    run = _saved_run(tmp_path)
    saved = load_yaml(run / "config.yaml")
    same = build_config(SegmentTrainConfig, None, saved)
    longer = build_config(SegmentTrainConfig, None, saved, ["epochs=10", "time_limit=30", "workers=0", "device=cpu",
                                                             "precision=32", "patience=0"])
    check_resume(saved, same, "c.yaml")
    check_resume(saved, longer, "c.yaml")  # how long and where: allowed
    with pytest.raises(ConfigError, match="seed is 0"):
        check_resume(saved, build_config(SegmentTrainConfig, None, saved, ["seed=1"]), "c.yaml")

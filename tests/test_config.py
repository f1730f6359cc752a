"""Recipes: ``deepshield train --config recipes/<name>.yaml``, flags override, unknown keys refused."""

from pathlib import Path

import pytest

from deepshield.cli import main, parse_args
from deepshield.config import RecipeError, TrainConfig, load_recipe, parse_fraction
from deepshield.data.transforms import AUGMENTS

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_shipped_recipes_are_valid_train_configs():
    names = {p.stem for p in RECIPES}
    assert {"dfdc-faces-standard", "dfdc-faces-fast-at", "dfdc-faces-pgd-at"} <= names
    for path in RECIPES:
        cfg = TrainConfig(**load_recipe(path))
        assert cfg.dataset.startswith("catalog:") and cfg.augment in AUGMENTS
    assert load_recipe(RECIPES[0].parent / "dfdc-faces-pgd-at.yaml")["eps"] == pytest.approx(2 / 255)


def test_flags_override_the_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("backbone: small_cnn\nepochs: 7\neps: 1.5/255\nimage-size: 48\n")
    args = parse_args(["train", "--config", str(recipe), "--epochs", "2"])
    assert (args.epochs, args.backbone, args.image_size) == (2, "small_cnn", 48)
    assert args.eps == pytest.approx(1.5 / 255) and args.config == str(recipe)
    assert parse_args(["train"]).epochs == 5  # no recipe: the flag defaults


@pytest.mark.parametrize(("text", "message"), [
    ("epoch: 3\n", "unknown key 'epoch'"),
    ("- a\n- b\n", "expected a mapping"),
    ("eps: two\n", "eps: 'two' is not a number"),
])
def test_bad_recipe_is_one_line_exit_2(tmp_path, capsys, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    assert main(["train", "--config", str(recipe), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(recipe) in err and len(err.splitlines()) == 1
    with pytest.raises(RecipeError):
        load_recipe(tmp_path / "missing.yaml")


def test_sweep_spec_refuses_linf_eps_above_one_but_not_l2():
    from deepshield.config import SweepSpec
    from deepshield.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 2/255"):
        SweepSpec(eps=(2.0,))
    assert SweepSpec(eps=(2.0,), norm="l2").eps == (2.0,)
    with pytest.raises(ConfigError, match="at least one budget"):
        SweepSpec(eps=())


def test_config_from_mapping_fills_nested_configs_and_round_trips():
    from deepshield.config import EvalConfig, SweepSpec, config_fields, config_from_mapping

    cfg = config_from_mapping(EvalConfig, {"checkpoint": "b.pt", "eps": [2 / 255], "steps": 20, "seed": 3,
                                           "batch_size": 16, "unrelated": 1})
    assert cfg.sweep == SweepSpec(eps=(2 / 255,), steps=20, seed=3) and cfg.batch_size == 16
    assert {"steps", "eps", "checkpoint", "batch_size"} <= config_fields(EvalConfig)
    assert "sweep" not in config_fields(EvalConfig)
    assert SweepSpec.from_dict(cfg.sweep.to_dict()) == cfg.sweep


def test_parse_fraction():
    assert parse_fraction("1.25/255") == pytest.approx(1.25 / 255)
    assert parse_fraction("0.5") == 0.5
    with pytest.raises(ValueError):
        parse_fraction("1/x")

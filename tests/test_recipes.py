"""Typed recipes: every shipped TOML loads into a checked ``Recipe``; overrides are checked too."""

from __future__ import annotations

import dataclasses

import pytest

from videomix_dali.recipes import (
    FeatureRecipe,
    Recipe,
    Schedule,
    list_recipes,
    load_recipe,
    resolve_recipe,
)


def test_every_shipped_recipe_loads_with_its_schedule_and_class_count():
    names = list_recipes()
    assert {"kinetics", "mini-kinetics", "ssv2", "ucf101", "hmdb51", "demo"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name and isinstance(recipe.schedule, Schedule)
    assert load_recipe("kinetics").num_classes == 400
    assert load_recipe("ssv2").schedule.milestones == (26, 33)
    assert load_recipe("demo").schedule.epochs == 100


def test_replace_checks_values_and_names_unknown_fields():
    demo = load_recipe("demo")
    assert demo.replace(batch_size=None) is demo  # None keeps the recipe's value
    small = demo.replace(batch_size=2, scale=[0.5, 1.0])
    assert small.batch_size == 2 and small.scale == (0.5, 1.0) and demo.batch_size == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.batch_size = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="num_frames=0 must be an integer >= 1"):
        demo.replace(num_frames=0)
    with pytest.raises(TypeError, match="num_frame"):
        demo.replace(num_frame=4)


def test_recipe_files_name_unknown_and_missing_keys(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("num_frames = 4\ncolour = 'red'\n")
    with pytest.raises(ValueError, match=r"recipe 'mine' is malformed: unknown keys \['colour'\]"):
        Recipe.from_toml(path)


def test_the_feature_protocol_is_its_own_kind():
    thumos = load_recipe("thumos-features")
    assert isinstance(thumos, FeatureRecipe) and thumos.num_positions == 750
    assert "thumos-features" not in list_recipes() and "thumos-features" in list_recipes(None)
    assert resolve_recipe(thumos, FeatureRecipe, batch_size=2).batch_size == 2
    with pytest.raises(ValueError, match="'thumos-features' is not a Recipe"):
        resolve_recipe("thumos-features")

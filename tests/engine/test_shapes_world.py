"""The shapes world's data generator and the shapes:geneval verifier, on hand-drawn images with known answers."""

import pytest
import torch

from adrpo_engine.config import RewardSpec
from adrpo_engine.rewards import build_reward
from adrpo_engine.rewards.geneval import GenevalReward, detect, score
from adrpo_engine.worlds.shapes import data as world
from adrpo_engine.worlds.shapes.data import Obj, Placed, parse_prompt, render


def draw(*items: tuple[str, str, float, float]) -> torch.Tensor:
    """An image of (colour, shape, cx, cy) shapes of half-size 5."""
    return torch.from_numpy(render([Placed(Obj(colour, shape), cx, cy, 5.0) for colour, shape, cx, cy in items]))


def test_correct_single_object_scores_one():
    value, results = score("a red circle", draw(("red", "circle", 16, 16)))
    assert value == 1.0
    assert results == {"object": [True], "colour": [True], "count": [True]}


def test_wrong_colour_keeps_only_the_object():
    value, results = score("a red circle", draw(("blue", "circle", 16, 16)))
    assert results == {"object": [True], "colour": [False], "count": [False]}
    assert value == pytest.approx(1 / 3)


def test_wrong_shape_fails_everything():
    value, _ = score("a red circle", draw(("red", "triangle", 16, 16)))
    assert value == 0.0


def test_wrong_count():
    image = draw(("blue", "square", 6, 6), ("blue", "square", 20, 8), ("blue", "square", 12, 24))
    value, results = score("two blue squares", image)
    assert results["count"] == [False] and results["colour"] == [True]
    assert value == pytest.approx(2 / 3)
    assert score("three blue squares", image)[0] == 1.0


def test_swapped_position_fails_only_position():
    right_way = draw(("red", "square", 7, 16), ("blue", "circle", 24, 16))
    swapped = draw(("red", "square", 24, 16), ("blue", "circle", 7, 16))
    prompt = "a red square to the left of a blue circle"
    assert score(prompt, right_way)[0] == 1.0
    value, results = score(prompt, swapped)
    assert results["position"] == [False] and results["binding"] == [True, True]
    assert value == pytest.approx(4 / 5)
    assert score("a red square to the right of a blue circle", swapped)[0] == 1.0


def test_vertical_relations():
    image = draw(("yellow", "triangle", 16, 7), ("green", "circle", 16, 24))
    assert score("a yellow triangle above a green circle", image)[0] == 1.0
    assert score("a green circle below a yellow triangle", image)[0] == 1.0
    assert score("a yellow triangle below a green circle", image)[1]["position"] == [False]


def test_attribute_binding_swapped_colours():
    image = draw(("blue", "square", 8, 8), ("red", "circle", 24, 24))
    value, results = score("a red square and a blue circle", image)
    assert results == {"object": [True, True], "binding": [False, False]}
    assert value == 0.5


def test_missing_second_object_fails_position():
    value, results = score("a red square above a blue circle", draw(("red", "square", 16, 8)))
    assert results["position"] == [False] and results["binding"] == [True, False]
    assert value == pytest.approx(2 / 5)


def test_noise_resizing_and_background_are_tolerated():
    image = draw(("green", "triangle", 10, 10), ("yellow", "square", 22, 22))
    noisy = (image + 0.05 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    big = torch.nn.functional.interpolate(noisy[None], scale_factor=2, mode="nearest")[0]
    for picture in (noisy, big):
        assert score("a green triangle to the left of a yellow square", picture)[0] == 1.0
    assert detect(torch.from_numpy(render([]))) == []


def test_unparseable_prompt_gets_no_reward():
    assert score("a photo of a cat", draw(("red", "circle", 16, 16)))[0] is None
    assert parse_prompt("two red circle") is None
    assert parse_prompt("A Red  Circle").objects[0] == (Obj("red", "circle"), 1)


def test_registered_reward_and_breakdown():
    reward = build_reward(RewardSpec(name="shapes:geneval"), "image")
    assert isinstance(reward, GenevalReward)
    images = torch.stack(
        [
            draw(("red", "circle", 16, 16)),
            draw(("red", "square", 24, 16), ("blue", "circle", 7, 16)),
            draw(("red", "circle", 16, 16)),
        ]
    )
    values = reward(images, ["a red circle", "a red square to the left of a blue circle", "a cat"])
    assert values[0] == 1.0 and values[1] == pytest.approx(0.8) and values[2] is None
    assert reward.last_breakdown["geneval/position"] == 0.0
    assert reward.last_breakdown["geneval/colour"] == 1.0
    assert reward.last_breakdown["geneval/binding"] == 1.0
    assert reward.last_breakdown["geneval/strict"] == 0.5


def test_generator_is_seeded_and_its_images_verify():
    images, captions = world.generate(200, seed=3)
    again, captions_again = world.generate(200, seed=3)
    assert torch.equal(images, again) and captions == captions_again
    assert images.shape == (200, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    templates = {parse_prompt(c).template for c in captions}
    assert templates == {"single", "count", "pair", "relation"}
    assert all(score(c, image)[0] == 1.0 for image, c in zip(images, captions))


def test_held_out_split():
    held = world.compositional_prompts(held_out=True)
    seen = world.compositional_prompts(held_out=False)
    assert held and seen and not set(held) & set(seen)
    _, captions = world.generate(500, seed=4)
    assert not set(captions) & set(held), "a held-out combination leaked into the training data"
    assert set(world.single_prompts()) <= set(captions) | set(world.single_prompts())
    assert all(parse_prompt(p) is not None for p in held + seen + world.single_prompts())
    # every object still appears alone in training; only combinations are held out
    assert not any(world.is_held_out(parse_prompt(p)) for p in world.single_prompts())

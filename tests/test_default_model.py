"""The committed default model: loads, is honest about itself, and reproduces its card."""

from __future__ import annotations

import pytest

from scoring.model import DEFAULT_MODEL_DIR, ModelBundle


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return ModelBundle.load()


def test_card_says_what_the_model_is(bundle: ModelBundle) -> None:
    card = bundle.card
    markdown = (DEFAULT_MODEL_DIR / "card.md").read_text()
    assert "NOT FOR DIAGNOSTIC USE" in card["intended_use"]
    assert "phantom" in card["intended_use"]
    assert card["training_data"]["kind"].startswith("synthetic hand-radiograph phantom")
    assert card["detector"]["kind"] in ("keypoints", "cascade")
    # real hands: counted, split by image, research use said, validation never trained on
    real = card["training_data"].get("real")
    if real is not None:
        assert "research use" in real["note"]
        assert not set(real["validation_ids"]) & set(real["tuning_ids"])
        assert "evaluation_real" in card and "real images" in markdown
    assert card["version"].endswith(card["content_hash"][:12])
    assert "NOT FOR DIAGNOSTIC USE" in markdown and card["version"] in markdown
    # the test seeds were never used for training or validation
    seeds = {card["training_data"][k]["seed"] for k in ("train", "validation")}
    assert card["training_data"]["test"]["seed"] not in seeds


def test_model_reproduces_its_cards_figures(bundle: ModelBundle) -> None:
    from worker.lab.evaluate_folder import evaluate_phantom_test_set
    from worker.lab.training_data import PhantomSet

    figures = evaluate_phantom_test_set(
        DEFAULT_MODEL_DIR,
        PhantomSet(**bundle.card["training_data"]["test"]),
        lambda _name, _total: lambda: None,
    )
    card = bundle.card["evaluation"]
    assert figures["detection"]["sensitivity"] == pytest.approx(
        card["detection"]["sensitivity"], abs=0.01
    )
    assert figures["detection"]["identity_accuracy"] == pytest.approx(
        card["detection"]["identity_accuracy"], abs=0.01
    )
    for kind in ("jsn", "erosion"):
        for key in ("pea", "pca", "sensitivity", "specificity", "pearson_total"):
            assert figures[kind][key] == pytest.approx(card[kind][key], abs=0.02), (kind, key)

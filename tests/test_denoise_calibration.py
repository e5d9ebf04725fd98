"""The semantic stand-in calibrated on the training positives, and the simulated (oracle) rater."""
from __future__ import annotations

import numpy as np
import pytest

from recbole_llmhni.config import ConfigError, validate
from recbole_llmhni.denoise.calibrate import positive_relevance, quantile_thresholds
from recbole_llmhni.denoise.simulated import OracleRater
from recbole_llmhni.llm import RatingRequest, SemanticRater


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_positive_relevance_of_each_view_by_hand():
    user_z = np.vstack([np.zeros(2), _unit([[1, 0], [0, 1]])])  # row 0: padding
    item_z = np.vstack([np.zeros(2), _unit([[1, 0], [1, 1], [0, 1]])])
    users = np.array([1, 1, 2])
    items = np.array([1, 2, 3])
    user_view, item_view = positive_relevance(user_z, item_z, users, items, n_liked=5, seed=0)
    c = 1 / np.sqrt(2)
    # s(u, i) of each training pair
    np.testing.assert_allclose(user_view, [1.0, c, 1.0])
    # user 1's other item for (1, 1) is item 2 and vice versa: cos(item1, item2) twice; user 2 has no other item
    np.testing.assert_allclose(item_view, [c, c])


def test_quantile_thresholds_are_numpy_quantiles_of_each_view():
    rng = np.random.default_rng(0)
    user_view, item_view = rng.normal(size=500), rng.normal(0.3, 0.1, size=400)
    t = quantile_thresholds(user_view, item_view, 0.25, 0.1)
    assert t == {
        "user_high": pytest.approx(np.quantile(user_view, 0.25)), "user_low": pytest.approx(np.quantile(user_view, 0.1)),
        "item_high": pytest.approx(np.quantile(item_view, 0.25)), "item_low": pytest.approx(np.quantile(item_view, 0.1)),
    }
    with pytest.raises(ValueError, match="quantile levels"):
        quantile_thresholds(user_view, item_view, 0.1, 0.25)


def test_stand_in_uses_each_views_own_thresholds():
    rater = SemanticRater(0.5, 0.2, item_high=0.1, item_low=0.0, note="quantiles 0.25/0.1 of the training positives")
    rating = rater.rate([RatingRequest("u", "i", user_relevance=0.3, item_relevance=0.3)])[0]
    assert (rating.user_view, rating.item_view) == ("Medium", "High")
    assert "quantiles 0.25/0.1" in rater.name and rater.is_stand_in


def _oracle(accuracy, positives, injected):
    stand_in = SemanticRater(0.5, 0.2)
    return OracleRater(stand_in, injected, positives, accuracy, seed=3)


def test_oracle_with_full_accuracy_knows_the_noise_and_leaves_negatives_to_the_stand_in():
    positives = [("u1", "i1"), ("u1", "i2"), ("u2", "i3")]
    rater = _oracle(1.0, positives, injected=[("u1", "i2")])
    requests = [RatingRequest(u, i, user_relevance=0.0, item_relevance=0.0) for u, i in positives]
    requests.append(RatingRequest("u2", "i9", user_relevance=0.9, item_relevance=0.9))  # a high-score negative
    views = [(r.user_view, r.item_view) for r in rater.rate(requests)]
    assert views == [("High", "High"), ("Low", "Low"), ("High", "High"), ("High", "High")]
    assert rater.name.startswith("simulated rater (accuracy 1")
    flipped = [(r.user_view, r.item_view) for r in _oracle(0.0, positives, [("u1", "i2")]).rate(requests)]
    assert flipped[:3] == [("Low", "Low"), ("High", "High"), ("Low", "Low")] and flipped[3] == views[3]


def test_oracle_accuracy_is_the_share_of_correct_labels_and_does_not_depend_on_order():
    positives = [(f"u{k}", f"i{k}") for k in range(4000)]
    injected = positives[::4]
    rater = _oracle(0.7, positives, injected)
    requests = [RatingRequest(u, i) for u, i in positives]
    ratings = rater.rate(requests)
    truth = {p: ("Low" if p in set(injected) else "High") for p in positives}
    correct = np.mean([r.user_view == truth[(r.user_id, r.item_id)] for r in ratings])
    assert correct == pytest.approx(0.7, abs=0.025)  # 4000 draws: 3 standard errors
    again = {(r.user_id, r.item_id): r for r in rater.rate(requests[::-1])}
    assert all(again[(r.user_id, r.item_id)] == r for r in ratings)


def test_oracle_and_quantile_settings_are_checked_with_the_config():
    with pytest.raises(ConfigError, match="llmhni_noise_ratio > 0"):
        validate({"llmhni_rater": "oracle", "llmhni_noise_ratio": 0.0})
    validate({"llmhni_rater": "oracle", "llmhni_noise_ratio": 0.2})
    with pytest.raises(ConfigError, match="not a quantile level"):
        validate({"llmhni_semantic_high": 1.5, "llmhni_semantic_low": 0.1})
    validate({"llmhni_semantic_thresholds": "absolute", "llmhni_semantic_high": 1.5, "llmhni_semantic_low": 0.1})

"""Noise injection adds random non-interacted pairs to the training split only, and saves them."""
import numpy as np
import pytest

from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.data.noise import read_pairs, sample_noise_pairs


def test_sample_noise_pairs_properties():
    rng = np.random.default_rng(1)
    users = rng.integers(1, 20, size=200)
    items = rng.integers(1, 50, size=200)
    rows, noise_items = sample_noise_pairs(users, users, items, n_items=50, ratio=0.25, seed=7)
    assert len(rows) == 50
    noise_keys = users[rows] * 50 + noise_items
    assert len(np.unique(noise_keys)) == 50  # distinct
    assert not np.isin(noise_keys, users * 50 + items).any()  # never an observed pair
    assert (noise_items >= 1).all() and (noise_items < 50).all()  # never the padding id
    again = sample_noise_pairs(users, users, items, n_items=50, ratio=0.25, seed=7)
    assert np.array_equal(rows, again[0]) and np.array_equal(noise_items, again[1])
    other = sample_noise_pairs(users, users, items, n_items=50, ratio=0.25, seed=8)
    assert not np.array_equal(noise_items, other[1])


def test_zero_and_impossible_ratios():
    users = np.array([1, 1, 2])
    items = np.array([1, 2, 1])
    rows, noise = sample_noise_pairs(users, users, items, n_items=3, ratio=0.0, seed=0)
    assert len(rows) == 0 and len(noise) == 0
    with pytest.raises(ValueError, match="smaller ratio"):
        sample_noise_pairs(users, users, items, n_items=3, ratio=5.0, seed=0)


def test_dataset_injects_into_train_only_and_saves_raw_ids(recbole_workdir, tiny_dataset):
    config = LLMHNIConfig(
        model="BPR",
        dataset="tiny",
        config_dict={"data_path": tiny_dataset["data_path"], "llmhni_noise_ratio": 0.2, "llmhni_noise_seed": 3},
    )
    full = LLMHNIDataset(config)
    train, valid, test = full.build()
    splits = tiny_dataset["splits"]
    assert len(train.inter_feat) == len(splits["train"]) + round(0.2 * len(splits["train"]))
    assert len(valid.inter_feat) == len(splits["valid"]) and len(test.inter_feat) == len(splits["test"])

    users, items = read_pairs(train.injected_pairs_file)
    injected = set(zip(users, items))
    assert len(injected) == round(0.2 * len(splits["train"]))
    observed = {pair for pairs in splits.values() for pair in pairs}
    assert not injected & observed
    assert set(users) <= set(tiny_dataset["users"]) and set(items) <= set(tiny_dataset["items"])
    train_pairs = set(zip(*[full.id2token(f, a) for f, a in zip(("user_id", "item_id"), train.train_edges())]))
    assert train_pairs == set(splits["train"]) | injected
    assert "noise" in str(train.injected_pairs_file) and "tiny" in str(train.injected_pairs_file)


def test_concurrent_writers_of_one_noise_file_all_succeed(tmp_path):
    # two runs injecting the same ratio write the same file at once (seen on a GPU box)
    from concurrent.futures import ThreadPoolExecutor

    from recbole_llmhni.data.noise import read_pairs, write_pairs

    path = tmp_path / "noise" / "injected_ratio0.2_seed2020.tsv"
    users, items = [str(u) for u in range(2000)], [str(u + 7) for u in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: write_pairs(path, users, items), range(32)))
    assert read_pairs(path) == (users, items)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left

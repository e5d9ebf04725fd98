"""S4-S7 end to end with the openai rater against the loopback OpenAI-compatible server."""
import json

import numpy as np
import pytest

from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.pipeline import LLMHNIPipeline
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.denoise.rating import pair_label
from recbole_llmhni.artifacts import read_tsv
from recbole_llmhni.llm.prompts import PromptSet

from fake_openai_server import FakeOpenAIServer, label_for_prompt

N_LIKED = 2


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def _graph(train):
    return LLMHNIPipeline(train.config).run(train).graph


def _train(tiny_dataset, workdir, server, **extra):
    config = LLMHNIConfig(
        model="BackboneLightGCN",
        dataset="tiny",
        config_dict={
            "data_path": tiny_dataset["data_path"],
            "llmhni_artifact_dir": str(workdir / "art"),
            "llmhni_cache_dir": str(workdir / "llm_cache"),
            "llmhni_rater": "openai",
            "llmhni_neg_mode": "uniform",  # S3 off: no semantic vectors needed
            "llmhni_api_base_url": server.base_url,
            "llmhni_max_retries": 0,
            "llmhni_pretrain_epochs": 2,
            "llmhni_cand_kn": 2,
            "llmhni_cand_kp": 2,
            "llmhni_cand_max_pairs": 40,
            "llmhni_liked_items": N_LIKED,
            "llmhni_noise_ratio": 0.25,
            "show_progress": False,
            **extra,
        },
    )
    train, _, _ = LLMHNIDataset(config).build()
    return train


def _expected_views(train, art):
    """Both views as the server labels the prompts the spec describes (user / liked items vs item)."""
    prompts = PromptSet.load()
    users, items = train.user_profiles(), train.item_profiles()
    uid = lambda t: train.token2id("user_id", t)  # noqa: E731
    iid = lambda t: train.token2id("item_id", t)  # noqa: E731
    liked = read_tsv(next((art / "candidates").glob("*/liked.tsv")), {"rank": int})
    best = {}
    for u, i, r in sorted(zip(liked["user"], liked["item"], liked["rank"]), key=lambda row: row[2]):
        best.setdefault(u, []).append(i)
    expected, prompts_asked = {}, set()
    for u, i in zip(*[read_tsv(next((art / "candidates").glob("*/candidates.tsv")))[c] for c in ("user", "item")]):
        shown = [j for j in best[u] if j != i][:N_LIKED]
        assert shown, "every candidate user has another liked item"
        user_msg = prompts.user_messages(users[uid(u)], items[iid(i)])[-1]["content"]
        item_msg = prompts.item_messages([items[iid(j)] for j in shown], items[iid(i)])[-1]["content"]
        expected[(u, i)] = (label_for_prompt(user_msg), label_for_prompt(item_msg))
        prompts_asked |= {user_msg, item_msg}
    return expected, prompts_asked


def test_openai_rater_end_to_end_and_nothing_is_asked_twice(recbole_workdir, tiny_dataset, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    art = recbole_workdir / "art" / "tiny"
    train = _train(tiny_dataset, recbole_workdir, server)
    graph = LLMHNIPipeline(train.config).run(train).graph
    asked = server.count(path="/chat/completions")

    ratings = read_tsv(next((art / "ratings").glob("*/ratings.tsv")))
    assert len(ratings["user"]) == 40
    expected, prompts_asked = _expected_views(train, art)
    got = {(u, i): (uv, iv) for u, i, uv, iv in zip(ratings["user"], ratings["item"], ratings["user_view"], ratings["item_view"])}
    assert got == expected
    # each distinct view asked exactly once (no repair turns: the fake server's answers parse)
    assert asked == len(prompts_asked) == len(server.ok_counts()) and set(server.ok_counts().values()) == {1}
    assert ratings["label"].tolist() == pair_label(ratings["user_view"], ratings["item_view"]).tolist()
    assert json.loads(next((art / "ratings").glob("*/manifest.json")).read_text())["rater"] == "openai/gpt-4o"

    added = read_tsv(graph.directory / "added.tsv")
    hard_negs = {(u, i) for u, i, k, label in zip(ratings["user"], ratings["item"], ratings["kind"], ratings["label"])
                 if k == "neg" and label == "hard"}
    assert set(zip(added["user"], added["item"])) == hard_negs
    assert set(added["rater"].tolist()) <= {"openai/gpt-4o"}
    assert "identification" in json.loads((graph.directory / "identification.json").read_text())

    # a second run reuses the ratings artifact: not a single request
    again = _graph(_train(tiny_dataset, recbole_workdir, server))
    assert server.count(path="/chat/completions") == asked
    assert np.array_equal(again.users, graph.users)

    # with the ratings artifact lost, S6 re-rates from the rater's SQLite cache: still no request
    for manifest in (art / "ratings").glob("*/manifest.json"):
        manifest.unlink()
    third = _graph(_train(tiny_dataset, recbole_workdir, server))
    assert server.count(path="/chat/completions") == asked
    assert np.array_equal(third.users, graph.users) and np.array_equal(third.items, graph.items)


def test_s6_in_batch_mode_rates_through_the_batch_api(recbole_workdir, tiny_dataset, server, monkeypatch):
    """llmhni_llm_mode=batch: the same ratings, every view in one batch, no online chat request."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    art = recbole_workdir / "art" / "tiny"
    train = _train(tiny_dataset, recbole_workdir, server, llmhni_llm_mode="batch",
                   llmhni_batch_poll_interval=0.01, llmhni_batch_poll_max=0.02)
    LLMHNIPipeline(train.config).run(train)
    ratings = read_tsv(next((art / "ratings").glob("*/ratings.tsv")))
    expected, prompts_asked = _expected_views(train, art)
    got = {(u, i): (uv, iv) for u, i, uv, iv in zip(ratings["user"], ratings["item"], ratings["user_view"], ratings["item_view"])}
    assert got == expected
    assert server.count(path="/chat/completions") == 0 and server.batch_submissions == 1
    assert len(server.batch_answers) == len(prompts_asked) and set(server.batch_answers.values()) == {1}

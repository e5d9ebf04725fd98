"""The dataset hook: raw-id mapping of profiles, training-only edges and composed profiles."""
import pytest

from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.data.profiles import ProfileFormatError


def _build(dataset, **config_dict):
    config = LLMHNIConfig(model="BPR", dataset=dataset, config_dict=config_dict)
    full = LLMHNIDataset(config)
    return full, full.build()


def test_train_edges_are_the_training_split_only(recbole_workdir, tiny_dataset):
    full, (train, valid, test) = _build("tiny", data_path=tiny_dataset["data_path"])
    users, items = train.train_edges()
    raw = set(zip(full.id2token("user_id", users), full.id2token("item_id", items)))
    assert raw == set(tiny_dataset["splits"]["train"])
    for split in (valid, test, full):
        with pytest.raises(RuntimeError, match="training split"):
            split.train_edges()


def test_profiles_follow_recbole_id_remapping(recbole_workdir, tiny_dataset):
    full, (train, _, _) = _build("tiny", data_path=tiny_dataset["data_path"])
    item_texts = train.item_profiles()
    user_texts = train.user_profiles()
    assert item_texts[0] == "" and user_texts[0] == ""  # padding id
    for internal_id in range(1, full.item_num):
        token = full.id2token("item_id", internal_id)
        assert item_texts[internal_id] == f"Book {token} about topic {int(token[1:]) % 5}."
    given_user = tiny_dataset["users"][5]
    assert user_texts[full.token2id("user_id", given_user)] == f"Reader {given_user}."


def test_missing_user_profile_is_composed_from_training_items_only(recbole_workdir, tiny_dataset):
    full, (train, _, _) = _build("tiny", data_path=tiny_dataset["data_path"])
    user = tiny_dataset["users"][0]  # has no line in the profile file
    text = train.user_profiles()[full.token2id("user_id", user)]
    train_items = [i for u, i in tiny_dataset["splits"]["train"] if u == user]
    held_out = [i for split in ("valid", "test") for u, i in tiny_dataset["splits"][split] if u == user]
    assert text.startswith("Items this user interacted with:")
    for item in train_items:
        assert f"Book {item} " in text
    for item in held_out:
        assert f"Book {item} " not in text
    assert text.startswith("Items this user interacted with: Book ")


def test_ml100k_profiles_are_composed_from_side_files_without_leakage(recbole_workdir):
    full, (train, valid, test) = _build("ml-100k")
    items = train.item_profiles()
    toy_story = full.token2id("item_id", "1")
    assert items[toy_story] == "Title: Toy Story. Year: 1995. Genres: Animation Children's Comedy."
    users = train.user_profiles()
    uid = full.token2id("user_id", "1")
    assert users[uid].startswith("Age: 24. Gender: M. Occupation: technician.")
    assert "zip" not in users[uid].lower()
    # history only from training interactions
    train_items = set(train.inter_feat["item_id"][train.inter_feat["user_id"] == uid].tolist())
    held_out = set(valid.inter_feat["item_id"][valid.inter_feat["user_id"] == uid].tolist()) | set(
        test.inter_feat["item_id"][test.inter_feat["user_id"] == uid].tolist()
    )
    history = users[uid].split("Items this user interacted with: ")[1].rstrip(".")
    named = history.split("; ")
    assert 0 < len(named) <= 20
    names = train.item_names()
    assert names[toy_story] == "Toy Story"
    assert set(named) <= {names[i] for i in train_items}
    assert not set(named) & {names[i] for i in held_out - train_items} - {names[i] for i in train_items}


def test_malformed_profile_line_names_file_and_line(recbole_workdir, tiny_dataset):
    path = tiny_dataset["dir"] / "tiny.item_profile.jsonl"
    lines = path.read_text().splitlines()
    lines[3] = '{"id": "i103", "profile": oops}'
    path.write_text("\n".join(lines) + "\n")
    _, (train, _, _) = _build("tiny", data_path=tiny_dataset["data_path"])
    with pytest.raises(ProfileFormatError, match=r"tiny\.item_profile\.jsonl, line 4"):
        train.item_profiles()

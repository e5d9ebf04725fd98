"""``LLMHNIDataset``: RecBole's Dataset plus the things LLMHNI needs from the data.

* **Noise injection** (``llmhni_noise_ratio``): random non-interacted pairs are added to the
  *training* split after RecBole has split the data; the injected pairs are saved by raw id
  under ``<llmhni_artifact_dir>/<dataset>/noise/``.
* **Training edges**: :meth:`train_edges` gives the (user, item) internal ids of the training
  graph G, and refuses on the validation / test splits so no stage can leak them.
* **Text profiles**: :meth:`user_profiles` / :meth:`item_profiles` map the side files
  ``<name>.user_profile.jsonl`` / ``<name>.item_profile.jsonl`` (keyed by raw tokens) through
  RecBole's id remapping. A user without a profile is composed from side features and their
  *training* items' profiles; with no profile file at all (ml-100k, the embedded default),
  profiles are composed from the ``.item`` / ``.user`` atomic files and training history.

RecBole hands models the *training* split (``train_data._dataset``), so a model calling
``dataset.train_edges()`` or ``dataset.user_profiles()`` sees training data only. The offline
stages (:mod:`recbole_llmhni.pipeline`) read the same methods and leave their results on that
split as ``llmhni_inputs``; this module computes none of them.
"""
from __future__ import annotations

import os
from logging import getLogger
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from recbole.data.dataset import Dataset
from recbole.data.interaction import cat_interactions

from recbole_llmhni.artifacts import artifact_dir
from recbole_llmhni.data import compose
from recbole_llmhni.data.noise import sample_noise_pairs, write_pairs
from recbole_llmhni.data.profiles import profile_path, read_profiles

__all__ = ["LLMHNIDataset", "SPLIT_NAMES"]

SPLIT_NAMES = ("train", "valid", "test")


class LLMHNIDataset(Dataset):
    """RecBole general-recommendation dataset with noise injection, training edges and profiles."""

    def __init__(self, config):
        super().__init__(config)
        self.split_name: Optional[str] = None  # set on the splits returned by build()
        self.injected_pairs_file: Optional[Path] = None
        self._profile_cache: Dict[str, List[str]] = {}
        #: set on the training split by the run function: the offline stages' results
        #: (:class:`recbole_llmhni.models.inputs.LLMHNIInputs`) that an LLMHNI model reads
        self.llmhni_inputs: Optional[object] = None

    # ------------------------------------------------------------------ splitting and noise
    def build(self) -> List["LLMHNIDataset"]:
        datasets = super().build()
        for name, split in zip(SPLIT_NAMES, datasets):
            split.split_name = name
            split._profile_cache = {}
            split.llmhni_inputs = None
        ratio = float(self.config["llmhni_noise_ratio"] or 0.0)
        if ratio > 0:
            datasets[0] = self._inject_noise(datasets, ratio)
        return datasets

    def _inject_noise(self, datasets: List["LLMHNIDataset"], ratio: float) -> "LLMHNIDataset":
        train = datasets[0]
        uid, iid = self.uid_field, self.iid_field
        train_users = train.inter_feat[uid].numpy()
        observed_users = np.concatenate([d.inter_feat[uid].numpy() for d in datasets])
        observed_items = np.concatenate([d.inter_feat[iid].numpy() for d in datasets])
        seed = int(self.config["llmhni_noise_seed"] if self.config["llmhni_noise_seed"] is not None else 2020)
        rows, items = sample_noise_pairs(
            train_users, observed_users, observed_items, self.item_num, ratio, seed
        )
        noise = train.inter_feat[torch.from_numpy(rows)]
        noise.interaction[iid] = torch.from_numpy(items).to(noise[iid].dtype)
        noisy_train = train.copy(cat_interactions([train.inter_feat, noise]))
        noisy_train.split_name = "train"
        noisy_train._profile_cache = {}
        noisy_train.llmhni_inputs = None

        path = artifact_dir(self.config, "noise") / f"injected_ratio{ratio:g}_seed{seed}.tsv"
        write_pairs(
            path,
            self.id2token(uid, noise[uid].numpy()),
            self.id2token(iid, items),
            header=(uid, iid),
        )
        noisy_train.injected_pairs_file = self.injected_pairs_file = path
        getLogger().info(
            f"Noise injection: added {len(items)} random non-interacted pairs "
            f"({ratio:.0%} of {len(train_users)} training interactions, seed {seed}); saved to {path}"
        )
        return noisy_train

    # ------------------------------------------------------------------ training graph
    def train_edges(self) -> Tuple[np.ndarray, np.ndarray]:
        """(users, items) internal ids of every training interaction (duplicates kept)."""
        self._require_train_split("train_edges()")
        return (
            self.inter_feat[self.uid_field].numpy().astype(np.int64),
            self.inter_feat[self.iid_field].numpy().astype(np.int64),
        )

    def _require_train_split(self, what: str) -> None:
        if self.split_name != "train":
            raise RuntimeError(
                f"{what} is only available on the training split (this is "
                f"{self.split_name or 'the unsplit dataset'}); call it on train_data.dataset."
            )

    # ------------------------------------------------------------------ profiles
    def item_profiles(self) -> List[str]:
        """Profile text of every item, indexed by internal id (index 0, padding, is ``""``)."""
        if "item" not in self._profile_cache:
            self._profile_cache["item"] = self._load_item_profiles()
        return self._profile_cache["item"]

    def user_profiles(self) -> List[str]:
        """Profile text of every user, indexed by internal id; composed ones use training data only."""
        self._require_train_split("user_profiles()")
        if "user" not in self._profile_cache:
            self._profile_cache["user"] = self._load_user_profiles()
        return self._profile_cache["user"]

    def user_profile_given(self) -> List[bool]:
        """Per internal id: whether the user's profile came from the profile file (``False``:
        composed, or padding at index 0); ``llmhni_profileless_users: item_mean`` replaces the
        composed ones by the mean of the user's training items' vectors."""
        self.user_profiles()
        return self._profile_cache["user_given"]

    def _profile_file(self, kind: str) -> Path:
        return profile_path(self.dataset_path, self.dataset_name, kind)

    def _side_features(self, kind: str) -> Dict[str, Dict[str, str]]:
        field = self.uid_field if kind == "user" else self.iid_field
        return compose.read_side_features(
            os.path.join(self.dataset_path, f"{self.dataset_name}.{kind}"), field
        )

    def item_names(self) -> List[str]:
        """Short item names (title feature, else the start of the profile), by internal id."""
        self.item_profiles()
        return self._profile_cache["item_name"]

    def _load_item_profiles(self) -> List[str]:
        tokens = self.field2id_token[self.iid_field]
        path = self._profile_file("item")
        given = read_profiles(path) if path.is_file() else {}
        features = self._side_features("item")
        texts, names = [""], [""]
        missing = 0
        for token in tokens[1:]:
            own = features.get(token, {})
            text = given.get(token) or compose.describe_features(own)
            missing += not text
            texts.append(text)
            names.append(compose.item_name(own, text))
        self._profile_cache["item_name"] = names
        source = str(path) if given else f"side features of {self.dataset_name}.item"
        getLogger().info(f"Item profiles: {len(tokens) - 1 - missing} from {source}")
        if missing:
            getLogger().warning(
                f"{missing} items have no profile in {path} and no side features; their profile is "
                "empty. Add lines for them to the profile file to give the LLM something to read."
            )
        return texts

    def _load_user_profiles(self) -> List[str]:
        tokens = self.field2id_token[self.uid_field]
        path = self._profile_file("user")
        given = read_profiles(path) if path.is_file() else {}
        features = self._side_features("user") if len(given) < len(tokens) - 1 else {}
        history_len = int(self.config["llmhni_profile_history_len"] or 20)
        history = self._training_history(history_len)
        names = self.item_names()
        texts = [""]
        composed = 0
        self._profile_cache["user_given"] = [False] + [bool(given.get(token)) for token in tokens[1:]]
        for user_id, token in enumerate(tokens[1:], start=1):
            text = given.get(token)
            if not text:
                composed += 1
                text = compose.compose_user_profile(
                    features.get(token), [names[i] for i in history.get(user_id, ())]
                )
            texts.append(text)
        getLogger().info(
            f"User profiles: {len(tokens) - 1 - composed} from {path if given else 'no profile file'}, "
            f"{composed} composed from side features and training history"
        )
        return texts

    def _training_history(self, max_items: int) -> Dict[int, List[int]]:
        """The first ``max_items`` training items of each user, in training-file order."""
        users, items = self.train_edges()
        order = np.argsort(users, kind="stable")
        users, items = users[order], items[order]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        return {
            int(users[s]): items[s : min(e, s + max_items)].tolist()
            for s, e in zip(starts, ends)
        }

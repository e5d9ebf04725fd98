r"""S4 -> S7 as one call with artifact reuse: :func:`build_denoised_graph`.

::

    graph = build_denoised_graph(config, train_dataset, relevance=(user_z, item_z))
    adj_prime = model.build_adjacency(graph.users, graph.items)      # G' for S8

Each stage's output is cached under ``<llmhni_artifact_dir>/<dataset>/<stage>/<key>/``
(:mod:`~recbole_llmhni.denoise.store`) with a key that digests everything it depends on, and
a stage runs only when its artifact is missing:

=========  ===========================================  ======================================
stage      computes                                     key digests
=========  ===========================================  ======================================
S4         ``Rec_pre`` (:mod:`.pretrain`)               backbone, hyperparameters, epochs,
                                                        training edges (raw ids)
S5         candidates + liked items (:mod:`.candidates`) S4 key, k_n, k_p, cap, L
S6         ratings (:mod:`.rating`)                     S5 key, rater identity, every
                                                        request's content (profiles, relevance)
S7         added / removed edges (:mod:`.rewrite`),     S6 key
           identification report (:mod:`.report`)
=========  ===========================================  ======================================

S4 is not even loaded when S5's artifact exists, and the rater is not constructed when S6's
does; a second run therefore trains nothing and rates nothing. One log line per stage says
what was reused or computed and how long it took, e.g. ``S4 pretrain: computed in 41.2 s
-> llmhni_artifacts/amazon-books/pretrain/3f0c.../``.

``llmhni_denoise: False`` returns :math:`G' = G` without touching any stage.

When noise was injected (``train_dataset.injected_pairs_file``), the identification report
is logged and saved as ``identification.json`` beside S7's edge lists.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from logging import getLogger
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from recbole_llmhni.denoise import candidates as s5
from recbole_llmhni.denoise import pretrain as s4
from recbole_llmhni.denoise import rating as s6
from recbole_llmhni.denoise import rewrite as s7
from recbole_llmhni.denoise.report import format_report, identification_report
from recbole_llmhni.denoise.store import StageDir, digest, edges_fingerprint
from recbole_llmhni.llm.settings import config_get

__all__ = ["DenoisedGraph", "DenoisePipeline", "build_denoised_graph", "DEFAULTS"]

logger = getLogger("recbole_llmhni.denoise")

#: the config keys of this package and their defaults (used when a key is absent)
DEFAULTS: Dict[str, Any] = {
    "llmhni_denoise": True,
    "llmhni_pretrain_epochs": s4.DEFAULT_PRETRAIN_EPOCHS,
    "llmhni_pretrain_backbone": None,
    "llmhni_cand_kn": s5.DEFAULT_KN,
    "llmhni_cand_kp": s5.DEFAULT_KP,
    "llmhni_cand_max_pairs": s5.DEFAULT_MAX_PAIRS,
    "llmhni_liked_items": s5.DEFAULT_LIKED,
    "llmhni_score_batch_size": 1024,
}

IdsLike = Union[np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class DenoisedGraph:
    """:math:`G'` (internal ids) and how it differs from :math:`G`.

    ``users`` / ``items``: the edges of :math:`G'`, unique, sorted by (user, item) -- pass them
    to ``GraphRecommender.build_adjacency``. ``added`` / ``removed``: the changes against the
    training graph. ``counts``: sizes and label counts. ``report``: the identification report
    dict (``None`` when denoising is off). ``directory``: S7's artifact directory.
    """

    users: np.ndarray
    items: np.ndarray
    added: s7.EdgeList
    removed: s7.EdgeList
    n_items: int
    counts: Dict[str, int] = field(default_factory=dict)
    report: Optional[Dict[str, Any]] = None
    directory: Optional[Path] = None
    enabled: bool = True

    def __len__(self) -> int:
        return len(self.users)

    def _member(self, edges: s7.EdgeList, users: IdsLike, items: IdsLike) -> IdsLike:
        """Membership of pairs in ``edges`` (whose keys are sorted), vectorised by binary search."""
        as_torch = isinstance(users, torch.Tensor)
        u = users.detach().cpu().numpy() if as_torch else np.asarray(users)
        i = items.detach().cpu().numpy() if isinstance(items, torch.Tensor) else np.asarray(items)
        keys = edges.keys(self.n_items)
        query = u.astype(np.int64) * np.int64(self.n_items) + i.astype(np.int64)
        if len(keys) == 0:
            found = np.zeros(query.shape, dtype=bool)
        else:
            found = keys[np.minimum(np.searchsorted(keys, query), len(keys) - 1)] == query
        return torch.from_numpy(found).to(users.device) if as_torch else found

    def contains(self, users: IdsLike, items: IdsLike) -> IdsLike:
        """Bool mask: is ``(users[k], items[k])`` an edge of :math:`G'`? (numpy or torch in, same out)."""
        return self._member(s7.EdgeList(self.users, self.items), users, items)

    def is_removed(self, users: IdsLike, items: IdsLike) -> IdsLike:
        """Bool mask: was ``(users[k], items[k])`` removed from :math:`G` as noisy?"""
        return self._member(self.removed, users, items)


def _seconds(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"


class DenoisePipeline:
    """S4-S7 on the training split ``train_dataset`` (see the module docstring).

    Args:
        config: the run's Config (or any mapping with the ``llmhni_*`` keys and RecBole's).
        train_dataset: ``LLMHNIDataset`` training split (``train_data.dataset``).
        relevance: semantic relevance for the rater's request (see :func:`.rating.as_relevance`):
            ``None``, ``(user_vectors, item_vectors)`` or a :class:`.rating.Relevance`. Required
            by the ``semantic`` rater.
        rater: a rater object to use instead of ``make_rater(config)`` (its ``name`` stands for
            its identity in the S6 key).
    """

    def __init__(self, config: Any, train_dataset: Any, relevance: Any = None, rater: Any = None) -> None:
        self.config = config
        self.dataset = train_dataset
        self.relevance = s6.as_relevance(relevance)
        self.rater = rater
        self.show_progress = bool(config_get(config, "show_progress", False))

    def get(self, key: str) -> Any:
        return config_get(self.config, key, DEFAULTS[key])

    # ------------------------------------------------------------------ id mapping
    def _tokens(self, field: str) -> np.ndarray:
        return np.asarray(self.dataset.field2id_token[field], dtype=str)

    def _token2id(self, kind: str, tokens: np.ndarray) -> np.ndarray:
        field = self.dataset.uid_field if kind == "user" else self.dataset.iid_field
        ids = self.dataset.token2id(field, list(map(str, tokens))) if len(tokens) else []
        return np.asarray(ids, dtype=np.int64).reshape(-1)

    # ------------------------------------------------------------------ run
    def run(self) -> DenoisedGraph:
        ds = self.dataset
        users, items = ds.train_edges()  # refuses anything but the training split
        n_items = int(ds.item_num)
        graph = s7.EdgeList(users, items)
        if not bool(self.get("llmhni_denoise")):
            unique = s7.EdgeList.from_keys(np.unique(graph.keys(n_items)), n_items)
            logger.info("denoising off (llmhni_denoise=False): G' = G, no stage run")
            return DenoisedGraph(unique.users, unique.items, s7.EdgeList.empty(), s7.EdgeList.empty(), n_items,
                                 {"train": len(unique), "added": 0, "removed": 0, "denoised": len(unique)},
                                 None, None, enabled=False)
        self._check_rater()
        started = time.perf_counter()
        user_tokens, item_tokens = self._tokens(ds.uid_field), self._tokens(ds.iid_field)
        edges_fp = edges_fingerprint(user_tokens[users], item_tokens[items])

        cands, k5 = self._candidates(edges_fp, users, items)
        rated, k6 = self._ratings(cands, k5, user_tokens, item_tokens)
        result = self._rewrite(rated, k6, graph, n_items, user_tokens, item_tokens)
        logger.info(f"S4-S7 done in {_seconds(started)}: G' has {len(result):,} edges "
                    f"(+{len(result.added):,} hard negatives, -{len(result.removed):,} noisy positives)")
        return result

    def _check_rater(self) -> None:
        if self.rater is not None or self.relevance is not None:
            return
        from recbole_llmhni.llm import LLMSettings

        if LLMSettings.from_config(self.config).rater == "semantic":
            raise ValueError(
                "llmhni_rater=semantic (the offline stand-in) derives both ratings from semantic "
                "relevance, but no relevance was given: pass relevance=(user_vectors, item_vectors) "
                "(e.g. train_dataset.semantic_embeddings()), or set llmhni_rater=openai."
            )

    # ------------------------------------------------------------------ S4 + S5
    def _rec_pre_stage(self, edges_fp: str) -> Tuple[StageDir, Dict[str, Any]]:
        m4 = s4.pretrain_material(self.config, s4.backbone_name(self.config), edges_fp)
        return StageDir(self.config, "pretrain", digest(m4)), m4

    def _load_or_train_rec_pre(self, st4: StageDir, m4: Dict[str, Any]) -> torch.nn.Module:
        started = time.perf_counter()
        if st4.is_complete():
            model = s4.load_rec_pre(st4, self.config, self.dataset, m4)
            logger.info(f"S4 pretrain: reused {st4.path} ({_seconds(started)})")
            return model
        logger.info(f"S4 pretrain: training {m4['backbone']} for {m4['epochs']} epochs on the training split")
        model = s4.train_rec_pre(self.config, self.dataset, m4)
        s4.save_rec_pre(st4, model, self.dataset, m4)
        logger.info(f"S4 pretrain: computed in {_seconds(started)} -> {st4.path}")
        return model

    def rec_pre(self) -> torch.nn.Module:
        """S4's ``Rec_pre`` (eval mode): loaded from its artifact, or trained and saved."""
        users, items = self.dataset.train_edges()
        user_tokens, item_tokens = self._tokens(self.dataset.uid_field), self._tokens(self.dataset.iid_field)
        return self._load_or_train_rec_pre(*self._rec_pre_stage(edges_fingerprint(user_tokens[users], item_tokens[items])))

    def _candidates(self, edges_fp: str, users: np.ndarray, items: np.ndarray) -> Tuple[s5.Candidates, str]:
        settings = s5.candidate_settings(self.config)
        st4, m4 = self._rec_pre_stage(edges_fp)
        m5 = {"pretrain": st4.key, **settings, "cap_policy": "kind share, rank in user, extremity, raw ids"}
        st5 = StageDir(self.config, "candidates", digest(m5))

        started = time.perf_counter()
        if st5.is_complete():
            logger.info(f"S4 pretrain: skipped, S5 candidates are cached ({st4.path} not loaded) (0.0 s)")
            cands = s5.load_candidates(st5, self._token2id)
            logger.info(f"S5 candidates: reused {st5.path} ({_seconds(started)}): "
                        f"{cands.n_neg:,} high-score negatives, {cands.n_pos:,} low-score positives")
            return cands, st5.key

        model = self._load_or_train_rec_pre(st4, m4)
        started = time.perf_counter()
        user_e, item_e = s4.propagated_embeddings(model)
        del model
        cands = s5.select_candidates(
            user_e, item_e, users, items, settings["kn"], settings["kp"], settings["liked"],
            batch_size=int(self.get("llmhni_score_batch_size")), show_progress=self.show_progress,
        )
        n_before = len(cands)
        user_tokens, item_tokens = self._tokens(self.dataset.uid_field), self._tokens(self.dataset.iid_field)
        tiebreak = np.char.add(np.char.add(user_tokens[cands.users], "\t"), item_tokens[cands.items])
        cands = s5.cap_candidates(cands, settings["max_pairs"], settings["kn"], settings["kp"], tiebreak)
        s5.save_candidates(st5, cands, user_tokens, item_tokens, m5)
        capped = f", capped from {n_before:,} at llmhni_cand_max_pairs={settings['max_pairs']:,}" if len(cands) < n_before else ""
        logger.info(f"S5 candidates: computed in {_seconds(started)} -> {st5.path}: {cands.n_neg:,} high-score "
                    f"negatives, {cands.n_pos:,} low-score positives{capped}")
        return cands, st5.key

    # ------------------------------------------------------------------ S6
    def _ratings(
        self, cands: s5.Candidates, k5: str, user_tokens: np.ndarray, item_tokens: np.ndarray
    ) -> Tuple[s6.RatedCandidates, str]:
        started = time.perf_counter()
        n_liked = int(self.get("llmhni_liked_items"))
        requests, user_rel, item_rel = s6.build_requests(
            cands, n_liked, self.dataset.user_profiles(), self.dataset.item_profiles(),
            user_tokens, item_tokens, self.relevance,
        )
        identity = {"rater_name": str(self.rater.name)} if self.rater is not None else s6.rater_identity(self.config)
        m6 = {"candidates": k5, "rater": identity, "requests": s6.requests_digest(requests)}
        st6 = StageDir(self.config, "ratings", digest(m6))
        if st6.is_complete():
            rated = s6.load_ratings(st6, self._token2id, liked=cands)
            logger.info(f"S6 rate: reused {st6.path} ({_seconds(started)}): {len(rated.label):,} pairs rated by "
                        f"{rated.rater}, nothing asked")
            return rated, st6.key

        rater = self.rater
        owned = rater is None
        if owned:
            from recbole_llmhni.llm import make_rater

            rater = make_rater(self.config)
        try:
            stand_in = bool(getattr(rater, "is_stand_in", False))
            logger.info(f"S6 rate: {len(requests):,} pairs x 2 views with {rater.name}"
                        + (" (offline STAND-IN for an LLM)" if stand_in else ""))
            if not stand_in and callable(getattr(rater, "plan", None)):
                logger.info("S6 rate: what this costs (answers already cached are free):\n" + rater.plan(requests).format())
            rated = s6.rate_candidates(rater, cands, requests, user_rel, item_rel)
        finally:
            if owned:
                rater.close()
        s6.save_ratings(st6, rated, user_tokens, item_tokens, m6)
        logger.info(f"S6 rate: computed in {_seconds(started)} -> {st6.path}: hard {rated.count(s6.LABEL_HARD):,}, "
                    f"noisy {rated.count(s6.LABEL_NOISY):,}, undetermined {rated.count(s6.LABEL_UNDETERMINED):,}")
        return rated, st6.key

    # ------------------------------------------------------------------ S7 + report
    def _rewrite(self, rated: s6.RatedCandidates, k6: str, graph: s7.EdgeList, n_items: int,
                 user_tokens: np.ndarray, item_tokens: np.ndarray) -> DenoisedGraph:
        started = time.perf_counter()
        m7 = {"ratings": k6, "rule": "G - noisy low-score positives + hard high-score negatives"}
        st7 = StageDir(self.config, "graph", digest(m7))
        reused = st7.is_complete()
        if reused:
            add, remove = s7.load_changes(st7, self._token2id)
        else:
            to_add, to_remove = s7.edge_changes(rated)
            c = rated.cands
            add = s7.EdgeList(c.users[to_add], c.items[to_add])
            remove = s7.EdgeList(c.users[to_remove], c.items[to_remove])
        g_prime, added, removed = s7.rewrite_edges(graph, remove, add, n_items)
        n_train = int(len(np.unique(graph.keys(n_items))))

        injected_file = getattr(self.dataset, "injected_pairs_file", None)
        injected = None
        if injected_file is not None:
            from recbole_llmhni.data.noise import read_pairs

            injected = read_pairs(injected_file)
        report = identification_report(rated, user_tokens, item_tokens, n_train, len(added), len(removed),
                                       len(g_prime), injected)
        if reused:
            logger.info(f"S7 rewrite: reused {st7.path} ({_seconds(started)})")
        else:
            extra = {"identification.json": json.dumps(report, indent=2) + "\n"} if injected is not None else {}
            s7.save_changes(st7, rated, user_tokens, item_tokens, m7, extra_files=extra,
                            n_train=n_train, n_denoised=len(g_prime))
            logger.info(f"S7 rewrite: computed in {_seconds(started)} -> {st7.path}")
        if injected is not None:
            logger.info("\n" + format_report(report))
        counts = {"train": n_train, "added": len(added), "removed": len(removed), "denoised": len(g_prime),
                  "candidates_neg": rated.cands.n_neg, "candidates_pos": rated.cands.n_pos,
                  **{label: rated.count(label) for label in (s6.LABEL_HARD, s6.LABEL_NOISY, s6.LABEL_UNDETERMINED)}}
        return DenoisedGraph(g_prime.users, g_prime.items, added, removed, n_items, counts, report, st7.path)


def build_denoised_graph(config: Any, train_dataset: Any, relevance: Any = None, rater: Any = None) -> DenoisedGraph:
    """Run (or reuse) S4-S7 and return :math:`G'`; see :class:`DenoisePipeline`."""
    return DenoisePipeline(config, train_dataset, relevance=relevance, rater=rater).run()

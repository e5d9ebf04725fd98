"""What the offline stages hand on: stage reports, :math:`G'` with provenance, the run's inputs.

Everything here is data: :class:`StageReport` and :class:`PipelineResult` turn into JSON
(:meth:`PipelineResult.to_dict`) for the run record that benchmarks read, and
:meth:`PipelineResult.model_inputs` gives the arrays an LLMHNI model copies.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

from recbole_llmhni.denoise.rewrite import EdgeList
from recbole_llmhni.models.inputs import DenoisedEdges, LLMHNIInputs

__all__ = ["StageReport", "DenoisedGraph", "PipelineResult"]

IdsLike = Union[np.ndarray, torch.Tensor]


@dataclass
class StageReport:
    """One stage of one run: what happened, where, how long.

    ``status``: ``computed``, ``reused`` (its artifact existed), ``skipped`` (not needed: a
    later stage's artifact existed) or ``off`` (the config does not use it). ``details``:
    the stage's figures (counts, sizes, the identification report of S7 under injected noise).
    """

    stage: str
    status: str
    seconds: float = 0.0
    path: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The log line: ``S2 align: reused llmhni_artifacts/ml-100k/align/3f0c... (0.1 s): ...``."""
        if self.status in ("off", "skipped"):
            text = f"{self.stage}: {self.status}" + (f" ({self.details['reason']})" if self.details.get("reason") else "")
        elif self.status == "reused":
            text = f"{self.stage}: reused {self.path} ({self.seconds:.1f} s)"
        else:
            text = f"{self.stage}: computed in {self.seconds:.1f} s -> {self.path}"
        summary = self.details.get("summary")
        return f"{text}: {summary}" if summary else text


@dataclass(frozen=True)
class DenoisedGraph:
    """:math:`G'` (internal ids) and how it differs from :math:`G`, with where it came from.

    ``users`` / ``items``: the edges of :math:`G'`, unique, sorted by (user, item).
    ``added`` / ``removed``: the changes against the training graph. ``counts``: sizes and
    label counts. ``report``: the identification report (``None`` without injected noise).
    ``directory``: S7's artifact directory (``added.tsv`` / ``removed.tsv`` hold each change's
    rater, views and Rec_pre score).
    """

    users: np.ndarray
    items: np.ndarray
    added: EdgeList
    removed: EdgeList
    n_items: int
    counts: Dict[str, int] = field(default_factory=dict)
    report: Optional[Dict[str, Any]] = None
    directory: Optional[Path] = None

    def __len__(self) -> int:
        return len(self.users)

    def _member(self, edges: EdgeList, users: IdsLike, items: IdsLike) -> IdsLike:
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
        return self._member(EdgeList(self.users, self.items), users, items)

    def is_removed(self, users: IdsLike, items: IdsLike) -> IdsLike:
        """Bool mask: was ``(users[k], items[k])`` removed from :math:`G` as noisy?"""
        return self._member(self.removed, users, items)

    def edges(self) -> DenoisedEdges:
        return DenoisedEdges(self.users, self.items, self.removed.users, self.removed.items, len(self.added))


@dataclass
class PipelineResult:
    """Output of :meth:`recbole_llmhni.pipeline.LLMHNIPipeline.run`.

    ``semantic_user`` / ``semantic_item``: :math:`z'` (or S1's vectors with
    ``llmhni_use_alignment: False``), by internal id, row 0 zero; ``None`` when no stage needs
    them. ``raw_user`` / ``raw_item``: S1's vectors. ``graph``: :math:`G'` (``None`` with
    denoising off). ``rec_pre_state``: ``Rec_pre``'s parameters (warm start only).
    ``fn_quantile``: S3's :math:`q` chosen by "S3 calibrate" (``llmhni_fn_quantile: auto`` only).
    ``neg_candidates``: S3's :math:`M` chosen by "S3 candidates" (``llmhni_neg_candidates: auto`` only).
    ``reports``: one :class:`StageReport` per stage, S1 to S7, in order.
    """

    reports: List[StageReport]
    semantic_user: Optional[np.ndarray] = None
    semantic_item: Optional[np.ndarray] = None
    raw_user: Optional[np.ndarray] = None
    raw_item: Optional[np.ndarray] = None
    graph: Optional[DenoisedGraph] = None
    rec_pre_state: Optional[Dict[str, torch.Tensor]] = None
    fn_quantile: Optional[float] = None
    neg_candidates: Optional[int] = None

    def report(self, stage: str) -> StageReport:
        """The report of ``stage`` (``"S1 encode"`` or just ``"S1"``)."""
        for r in self.reports:
            if r.stage == stage or r.stage.split()[0] == stage:
                return r
        raise KeyError(f"no stage {stage!r}; stages: {[r.stage for r in self.reports]}")

    @property
    def identification(self) -> Optional[Dict[str, Any]]:
        return None if self.graph is None else self.graph.report

    def model_inputs(self) -> LLMHNIInputs:
        """The arrays an LLMHNI model reads (:class:`~recbole_llmhni.models.inputs.LLMHNIInputs`)."""
        return LLMHNIInputs(
            semantic_user=self.semantic_user,
            semantic_item=self.semantic_item,
            graph=None if self.graph is None else self.graph.edges(),
            rec_pre_state=self.rec_pre_state,
            fn_quantile=self.fn_quantile,
            neg_candidates=self.neg_candidates,
        )

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: the stage reports and G''s counts and identification report."""
        out: Dict[str, Any] = {"stages": [asdict(r) for r in self.reports]}
        if self.graph is not None:
            out["graph"] = {"counts": dict(self.graph.counts), "directory": str(self.graph.directory)}
            out["identification"] = self.graph.report
        return out

"""What an LLMHNI model reads from the offline stages: arrays by internal id, nothing else.

:class:`recbole_llmhni.pipeline.LLMHNIPipeline` computes (or reuses) S1-S7 before the model is
built and puts an :class:`LLMHNIInputs` on the training split (``train_dataset.llmhni_inputs``),
the dataset RecBole hands the model's constructor. The constructor only copies these arrays
into buffers: it never encodes, rates, trains another model or writes a file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch

__all__ = ["LLMHNIInputs", "DenoisedEdges", "MissingInputsError", "inputs_of"]


@dataclass(frozen=True)
class DenoisedEdges:
    """:math:`G'` (S7) by internal id: its edges, and the training pairs it removed.

    ``users`` / ``items``: the edges of :math:`G'`, unique, sorted by (user, item).
    ``removed_users`` / ``removed_items``: low-score positives the rater judged noisy.
    ``n_added``: high-score negatives the rater judged hard (already among the edges).
    """

    users: np.ndarray
    items: np.ndarray
    removed_users: np.ndarray
    removed_items: np.ndarray
    n_added: int


@dataclass(frozen=True)
class LLMHNIInputs:
    """Inputs of an LLMHNI model; each is ``None`` when the config does not use it.

    ``semantic_user`` / ``semantic_item``: :math:`[n_U, d]` / :math:`[n_I, d]` unit vectors whose
    inner product is :math:`s(u, i)` (S2's :math:`z'`, or S1's embeddings without alignment).
    ``graph``: :math:`G'` (``llmhni_denoise``). ``rec_pre_state``: S4's ``Rec_pre`` parameters
    by name (``llmhni_warm_start``). ``fn_quantile``: S3's :math:`q` chosen by the S3 calibrate
    stage (``llmhni_fn_quantile: auto``). ``neg_candidates``: S3's :math:`M` chosen by the S3
    candidates stage (``llmhni_neg_candidates: auto``).
    """

    semantic_user: Optional[np.ndarray] = None
    semantic_item: Optional[np.ndarray] = None
    graph: Optional[DenoisedEdges] = None
    rec_pre_state: Optional[Dict[str, torch.Tensor]] = None
    fn_quantile: Optional[float] = None
    neg_candidates: Optional[int] = None


class MissingInputsError(ValueError):
    """An LLMHNI model was built from a dataset the pipeline has not prepared."""


def inputs_of(dataset: object, model_name: str) -> LLMHNIInputs:
    """The :class:`LLMHNIInputs` the pipeline put on ``dataset``, or a one-line error with the fix."""
    inputs = getattr(dataset, "llmhni_inputs", None)
    if not isinstance(inputs, LLMHNIInputs):
        raise MissingInputsError(
            f"{model_name} needs the results of the offline stages S1-S7 on its training split: build it "
            "through run_recbole_llmhni / run_recbole_llmhni.py, or run "
            "recbole_llmhni.pipeline.LLMHNIPipeline(config).run(train_dataset) before constructing it."
        )
    return inputs

r"""The identification report: how well S6's ``noisy`` label finds injected noise.

With :math:`I` the injected noisy training pairs (``llmhni_noise_ratio > 0``), :math:`C_{pos}`
the low-score positive candidates of S5 and :math:`F \subseteq C_{pos}` those labelled
``noisy`` (the edges S7 removes):

.. math::
    \text{precision} = \frac{|F \cap I|}{|F|}, \qquad
    \text{recall} = \frac{|F \cap I|}{|I|}, \qquad
    F_1 = \frac{2 \cdot \text{precision} \cdot \text{recall}}{\text{precision} + \text{recall}}

(0 when a denominator is 0). Also reported: :math:`|I \cap C_{pos}|` (injected pairs that
reached the candidate set, the ceiling of the recall), the recall within the candidate set
:math:`|F \cap I| / |I \cap C_{pos}|`, and the same precision / recall / F1 for two
references, so the rater's contribution can be read off: removing *every* low-score positive
(``Rec_pre`` alone: precision :math:`|I \cap C_{pos}| / |C_{pos}|`, recall
:math:`|I \cap C_{pos}| / |I|`) and removing :math:`|F|` training pairs at random (expected
precision :math:`|I| / |G|`, recall :math:`|F| / |G|`).
Label counts (hard / noisy / undetermined, per candidate kind) and the edges added and
removed complete it.

Injected pairs are negatives of nobody's ground truth; only positives can carry them, so a
high-score negative is never compared against :math:`I`.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from recbole_llmhni.denoise.rating import LABEL_HARD, LABEL_NOISY, LABEL_UNDETERMINED, RatedCandidates

__all__ = ["identification_report", "flagged_identification", "format_report"]


def _pair_keys(users: Sequence[str], items: Sequence[str]) -> np.ndarray:
    return np.char.add(np.char.add(np.asarray(users, dtype=str), "\t"), np.asarray(items, dtype=str))


def _ratio(num: int, den: int) -> float:
    return float(num) / float(den) if den else 0.0


def identification_report(
    rated: RatedCandidates,
    user_tokens: np.ndarray,
    item_tokens: np.ndarray,
    n_train_pairs: int,
    n_added: int,
    n_removed: int,
    n_graph_prime: int,
    injected: Optional[Tuple[Sequence[str], Sequence[str]]] = None,
) -> Dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring).

    Args:
        rated: S6's labelled candidates (internal ids).
        user_tokens, item_tokens: internal id -> raw token (``field2id_token``).
        n_train_pairs: :math:`|G|`, unique training pairs (noise included).
        n_added, n_removed, n_graph_prime: the S7 edge counts and :math:`|G'|`.
        injected: raw ``(users, items)`` of the injected pairs (``read_pairs``), or ``None``
            (then only the counts are reported).
    """
    c = rated.cands
    report: Dict[str, Any] = {
        "rater": rated.rater,
        "rater_is_stand_in": rated.is_stand_in,
        "candidates": {"neg": c.n_neg, "pos": c.n_pos, "users": int(len(np.unique(c.users)))},
        "labels": {
            label: {"neg": rated.count(label, False), "pos": rated.count(label, True)}
            for label in (LABEL_HARD, LABEL_NOISY, LABEL_UNDETERMINED)
        },
        "edges": {
            "train": int(n_train_pairs),
            "added": int(n_added),
            "removed": int(n_removed),
            "denoised": int(n_graph_prime),
        },
    }
    if injected is None:
        return report
    injected_keys = np.unique(_pair_keys(*injected))
    pos_rows = np.flatnonzero(c.is_pos)
    pos_keys = _pair_keys(user_tokens[c.users[pos_rows]], item_tokens[c.items[pos_rows]])
    is_injected = np.isin(pos_keys, injected_keys)
    flagged = rated.label[pos_rows] == LABEL_NOISY
    n_injected = int(len(injected_keys))
    reached = int(is_injected.sum())
    tp = int((flagged & is_injected).sum())
    n_flagged = int(flagged.sum())
    precision, recall = _ratio(tp, n_flagged), _ratio(tp, n_injected)
    report["identification"] = {
        "injected": n_injected,
        "injected_in_candidates": reached,
        "candidate_coverage": _ratio(reached, n_injected),
        "labelled_noisy": n_flagged,
        "true_positives": tp,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0,
        "recall_within_candidates": _ratio(tp, reached),
        "injected_labelled_hard": int((is_injected & (rated.label[pos_rows] == LABEL_HARD)).sum()),
        "injected_undetermined": int((is_injected & (rated.label[pos_rows] == LABEL_UNDETERMINED)).sum()),
        "reference_precision_all_low_score_positives": _ratio(reached, len(pos_rows)),
        "reference_precision_random": _ratio(n_injected, n_train_pairs),
        "references": {
            "all_low_score_positives": _prf(_ratio(reached, len(pos_rows)), _ratio(reached, n_injected)),
            "random_removal": _prf(_ratio(n_injected, n_train_pairs), _ratio(n_flagged, n_train_pairs)),
        },
    }
    return report


def flagged_identification(
    flagged_users: Sequence[int],
    flagged_items: Sequence[int],
    injected_users: Sequence[int],
    injected_items: Sequence[int],
    n_train_pairs: int,
    method: str,
    kind: Optional[str],
) -> Dict[str, Any]:
    r"""Precision / recall of a loss-based denoiser's flags against the injected pairs :math:`I`.

    ``flagged_*`` are the pairs :math:`F` a baseline of :mod:`recbole_llmhni.models.denoisers`
    dropped (``kind="dropped"``: T-CE, DCF, at their last look at each pair) or its
    :math:`|I|` lowest-weighted pairs (``kind="down-weighted"``: R-CE, BOD; then
    :math:`|F| = |I|` and precision = recall), all internal ids. The same formulas as
    :func:`identification_report`; ``reference_precision_random`` is :math:`|I| / |G|`, what a
    random pick achieves. ``kind=None`` (WBPR) flags nothing: precision and recall are 0.
    """
    flagged = {(int(u), int(i)) for u, i in zip(flagged_users, flagged_items)}
    injected = {(int(u), int(i)) for u, i in zip(injected_users, injected_items)}
    tp = len(flagged & injected)
    precision, recall = _ratio(tp, len(flagged)), _ratio(tp, len(injected))
    return {
        "method": method,
        "kind": kind,
        "identification": {
            "injected": len(injected),
            "labelled_noisy": len(flagged),
            "true_positives": tp,
            **_prf(precision, recall),
            "reference_precision_random": _ratio(len(injected), n_train_pairs),
        },
    }


def _prf(precision: float, recall: float) -> Dict[str, float]:
    return {"precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0}


def format_report(report: Dict[str, Any]) -> str:
    """Human-readable lines of :func:`identification_report`'s dict."""
    rater = report["rater"] + ("  [offline STAND-IN for an LLM]" if report.get("rater_is_stand_in") else "")
    cand, labels, edges = report["candidates"], report["labels"], report["edges"]

    def label_line(name: str) -> str:
        counts = labels[name]
        return f"{counts['neg'] + counts['pos']:,} (neg {counts['neg']:,}, pos {counts['pos']:,})"

    lines = [f"LLMHNI identification report -- rater: {rater}"]
    ident = report.get("identification")
    if ident is not None:
        lines += [
            f"  injected noisy pairs            {ident['injected']:>9,}  "
            f"({ident['reference_precision_random']:.1%} of {edges['train']:,} training pairs)",
            f"  reached the candidate set       {ident['injected_in_candidates']:>9,}  "
            f"({ident['candidate_coverage']:.1%} of injected; {cand['pos']:,} low-score positives)",
            f"  labelled noisy (removed)        {ident['labelled_noisy']:>9,}  "
            f"({ident['true_positives']:,} of them injected)",
            f"  precision / recall / F1         {ident['precision']:.4f} / {ident['recall']:.4f} / {ident['f1']:.4f}",
            f"  recall within candidates        {ident['recall_within_candidates']:.4f}  "
            f"(injected kept as hard: {ident['injected_labelled_hard']:,}, undetermined: {ident['injected_undetermined']:,})",
        ]
        refs = ident.get("references") or {}
        for key, text in (("all_low_score_positives", "remove every low-score positive"),
                          ("random_removal", "remove as many pairs at random")):
            if key in refs:
                r = refs[key]
                lines.append(f"  {text:<32}{r['precision']:.4f} / {r['recall']:.4f} / {r['f1']:.4f}")
    lines += [
        f"  candidates                      {cand['neg'] + cand['pos']:>9,}  "
        f"(neg {cand['neg']:,}, pos {cand['pos']:,}, {cand['users']:,} users)",
        f"  labels: hard {label_line(LABEL_HARD)}; noisy {label_line(LABEL_NOISY)}; "
        f"undetermined {label_line(LABEL_UNDETERMINED)}",
        f"  edges: +{edges['added']:,} added, -{edges['removed']:,} removed; "
        f"|G| {edges['train']:,} -> |G'| {edges['denoised']:,}",
    ]
    return "\n".join(lines)

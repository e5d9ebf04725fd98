"""A simulated rater for the rater-accuracy study: what must an LLM get right for LLMHNI to pay?

``llmhni_rater: oracle`` runs only with injected noise (``llmhni_noise_ratio > 0``; refused
when the config is built otherwise). It knows which training pairs were injected and labels
each *low-score positive* correctly with probability :math:`a` (``llmhni_oracle_accuracy``):
an injected pair is called noisy (views ``Low``/``Low``), a clean one kept (``High``/``High``),
and with probability :math:`1 - a` the other way round. Whether a pair is labelled correctly
is a seeded, order-independent draw per pair (a hash of the seed and the raw ids), so a run
repeats. High-score *negatives* get the calibrated semantic stand-in's labels: the oracle
knows nothing about them. Every log line and report names it ``simulated rater (accuracy a)``;
it never stands for an LLM's result.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, List, Sequence, Set, Tuple

from recbole_llmhni.llm.raters import Rating, RatingRequest

__all__ = ["OracleRater"]

Pair = Tuple[str, str]


class OracleRater:
    """The simulated rater (module docstring); ``stand_in`` rates the high-score negatives."""

    is_stand_in = True

    def __init__(self, stand_in, injected: Iterable[Pair], positives: Iterable[Pair], accuracy: float, seed: int) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"llmhni_oracle_accuracy must be in [0, 1], got {accuracy}")
        self.stand_in = stand_in
        self.injected: Set[Pair] = {(str(u), str(i)) for u, i in injected}
        self.positives: Set[Pair] = {(str(u), str(i)) for u, i in positives}
        self.accuracy = float(accuracy)
        self.seed = int(seed)
        self.name = f"simulated rater (accuracy {self.accuracy:g}; negatives: {stand_in.name})"

    def _correct(self, pair: Pair) -> bool:
        digest = hashlib.sha256(f"{self.seed}\x00{pair[0]}\x00{pair[1]}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64 < self.accuracy

    def rate(self, requests: Sequence[RatingRequest]) -> List[Rating]:
        out: List[Rating] = []
        negatives = [r for r in requests if (r.user_id, r.item_id) not in self.positives]
        by_pair = {(r.user_id, r.item_id): r for r in self.stand_in.rate(negatives)} if negatives else {}
        for request in requests:
            pair = (request.user_id, request.item_id)
            if pair in by_pair:
                out.append(by_pair[pair])
                continue
            noisy = (pair in self.injected) == self._correct(pair)
            view = "Low" if noisy else "High"
            out.append(Rating(request.user_id, request.item_id, view, view))
        return out

    def close(self) -> None:
        self.stand_in.close()

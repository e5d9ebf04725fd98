"""Seconds per step of RLMRec-Con's alignment term: dense log-sum-exp next to the blocked one.

RLMRec-Con's user term is an InfoNCE whose denominator runs over every user's mapped profile,
a ``[B, n_users]`` logit matrix per step. ``recbole_llmhni.models.losses.row_logsumexp``
forms it in cache-sized blocks (and recomputes them in the backward pass) instead of holding
it whole. This script times one step of the term (profile MLP over all users, the three
``anchored_nce`` terms, forward and backward) both ways, on random tensors of a dataset's
shape, and prints the medians side by side with the largest difference of the gradients.

    python benchmarks/row_logsumexp.py                       # amazon-books (RLMRec's data) shape
    python benchmarks/row_logsumexp.py --users 943 --items 1682 --steps 20   # ml-100k shape

Defaults: 11,000 users and 9,332 items (RLMRec's Amazon-book), batch 2,048, 64 dims, 384
profile dims (all-MiniLM-L6-v2), one torch thread. Not part of CI.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recbole_llmhni.models import rlmrec  # noqa: E402
from recbole_llmhni.models.rlmrec import anchored_nce, profile_mlp  # noqa: E402


def _dense_row_logsumexp(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(a @ c.T, dim=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=11000)
    ap.add_argument("--items", type=int, default=9332)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--profile-dim", type=int, default=384)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    user_e = torch.randn(args.users, args.dim, generator=g)
    item_e = torch.randn(args.items, args.dim, generator=g)
    prof_u = torch.randn(args.users, args.profile_dim, generator=g)
    prof_i = torch.randn(args.items, args.profile_dim, generator=g)
    user = torch.randint(0, args.users, (args.batch,), generator=g)
    pos = torch.randint(0, args.items, (args.batch,), generator=g)
    neg = torch.randint(0, args.items, (args.batch,), generator=g)
    torch.manual_seed(0)
    mlp = profile_mlp(args.profile_dim, args.dim)

    def step():
        ue, ie = user_e.clone().requires_grad_(), item_e.clone().requires_grad_()
        mlp.zero_grad()
        t0 = time.perf_counter()
        pu = mlp(prof_u)
        pp, pn = mlp(prof_i.index_select(0, pos)), mlp(prof_i.index_select(0, neg))
        loss = (anchored_nce(ue.index_select(0, user), pu.index_select(0, user), pu, 0.1)
                + anchored_nce(ie.index_select(0, pos), pp, pp, 0.1)
                + anchored_nce(ie.index_select(0, neg), pn, pn, 0.1))
        loss.backward()
        return time.perf_counter() - t0, float(loss.detach()), ue.grad, mlp[0].weight.grad.clone()

    blocked = rlmrec.row_logsumexp
    results = {}
    for name, fn in (("dense", _dense_row_logsumexp), ("blocked", blocked)):
        rlmrec.row_logsumexp = fn
        try:
            runs = [step() for _ in range(args.steps + 1)][1:]  # the first step warms up
        finally:
            rlmrec.row_logsumexp = blocked
        results[name] = runs
    print(f"RLMRec-Con alignment term, {args.users} users x {args.items} items, batch {args.batch}, "
          f"{args.threads} thread(s), median of {args.steps} steps (forward + backward)")
    print(f"{'form':10s} {'s/step':>8s} {'loss':>14s}")
    for name, runs in results.items():
        print(f"{name:10s} {statistics.median(r[0] for r in runs):8.3f} {runs[-1][1]:14.4f}")
    d, b = results["dense"][-1], results["blocked"][-1]
    print(f"speed-up {statistics.median(r[0] for r in results['dense']) / statistics.median(r[0] for r in results['blocked']):.2f}x; "
          f"largest gradient difference: user rows {float((d[2] - b[2]).abs().max()):.2e}, "
          f"MLP weights {float((d[3] - b[3]).abs().max()):.2e}")


if __name__ == "__main__":
    main()

"""Throughput of the LLM rating path against the loopback OpenAI-compatible server.

Measures, with the real ``openai`` client and the real cache:

* pairs/second rated by :class:`~recbole_llmhni.llm.raters.OpenAIRater` when every call
  takes a simulated ``--latency`` (default 200 ms), at each ``--concurrency`` (default 1, 8,
  32); a pair is two calls (user- and item-centric view). The ideal is
  ``concurrency / (2 * latency)`` pairs/s; the gap is client, server and cache overhead;
* pairs/second of a fully cached re-run (no call is made);
* raw cache lookups/second, one key at a time and in bulk.

Run from the repository root::

    python benchmarks/llm_throughput.py [--latency 0.2] [--concurrency 1 8 32] [--seconds 4]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from fake_openai_server import FakeOpenAIServer  # noqa: E402
from recbole_llmhni.llm import RatingRequest, make_rater  # noqa: E402
from recbole_llmhni.llm.cache import LLMCache  # noqa: E402


def make_requests(n: int, tag: str) -> List[RatingRequest]:
    return [
        RatingRequest(
            user_id=f"u{k % 97}",
            item_id=f"{tag}-i{k}",
            user_profile=f"User {k % 97} enjoys books about {['history', 'space', 'cooking', 'crime'][k % 4]} "
            "and reads two novels a month, mostly in the evening.",
            item_profile=f"Item {tag}-{k}: a {['novel', 'biography', 'guide', 'anthology'][k % 4]} about "
            f"topic {k % 31}, 300 pages, well reviewed by readers of the genre.",
            liked_item_profiles=[f"Liked item {j}: a book on topic {j % 31}." for j in range(k, k + 5)],
        )
        for k in range(n)
    ]


def config(server: FakeOpenAIServer, cache_dir: str, concurrency: int) -> dict:
    return {
        "llmhni_rater": "openai",
        "llmhni_api_base_url": server.base_url,
        "llmhni_api_key": "sk-benchmark-not-a-real-key",
        "llmhni_cache_dir": cache_dir,
        "llmhni_max_concurrency": concurrency,
        "llmhni_request_timeout": 30,
        "show_progress": False,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2, help="simulated seconds per call (default 0.2)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=4.0, help="target wall time per concurrency level")
    args = parser.parse_args()
    logging.getLogger("recbole_llmhni").setLevel(logging.WARNING)

    print(f"LLM rating throughput, loopback server, {args.latency * 1000:.0f} ms per call, 2 calls per pair")
    print(f"{'concurrency':>11} {'pairs':>6} {'seconds':>8} {'pairs/s':>8} {'ideal':>7} {'calls/s':>8} {'max in flight':>13}")
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(latency=args.latency) as server:
        # warm-up: import the SDK and open a connection outside the timed runs
        warm = make_rater(config(server, str(Path(tmp) / "warm-up"), 1))
        warm.rate(make_requests(1, "warm-up"))
        warm.close()
        last = None
        for concurrency in args.concurrency:
            ideal = concurrency / (2 * args.latency) if args.latency > 0 else float("inf")
            n_pairs = max(4, int(min(ideal, 500) * args.seconds))
            cache_dir = str(Path(tmp) / f"c{concurrency}")
            reqs = make_requests(n_pairs, f"c{concurrency}")
            rater = make_rater(config(server, cache_dir, concurrency))
            calls_before = server.count()
            server.max_in_flight = 0
            start = time.perf_counter()
            ratings = rater.rate(reqs)
            elapsed = time.perf_counter() - start
            calls = server.count() - calls_before
            assert len(ratings) == n_pairs and calls == 2 * n_pairs
            rater.close()
            print(
                f"{concurrency:>11} {n_pairs:>6} {elapsed:>8.2f} {n_pairs / elapsed:>8.1f} {ideal:>7.1f} "
                f"{calls / elapsed:>8.1f} {server.max_in_flight:>13}"
            )
            last = (cache_dir, reqs, concurrency)

        cache_dir, reqs, concurrency = last
        rater = make_rater(config(server, cache_dir, concurrency))
        calls_before = server.count()
        start = time.perf_counter()
        rater.rate(reqs)
        elapsed = time.perf_counter() - start
        assert server.count() == calls_before
        rater.close()
        print(f"\nfully cached re-run: {len(reqs)} pairs in {elapsed:.3f} s = {len(reqs) / elapsed:,.0f} pairs/s (0 calls)")

        with LLMCache.in_dir(cache_dir) as cache:
            keys = [row["key"] for row in cache.stored_requests()]
            rounds = max(1, 20000 // len(keys))
            start = time.perf_counter()
            for _ in range(rounds):
                for key in keys:
                    assert cache.get_call(key) is not None
            single = rounds * len(keys) / (time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(rounds):
                assert len(cache.get_calls(keys)) == len(keys)
            bulk = rounds * len(keys) / (time.perf_counter() - start)
        print(f"cache-hit lookups: {single:,.0f}/s one key at a time, {bulk:,.0f}/s in bulk ({len(keys)} keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

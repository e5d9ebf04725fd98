"""``python -m recbole_llmhni encode|label ...``: the LLM stages S1 and S6 from the command line.

``encode``
    Embed a profile file (JSON lines ``{"id", "profile"}``) and write ``.npz`` with arrays
    ``ids`` and ``embeddings`` -- the format ``llmhni_precomputed_*_emb`` reads back::

        python -m recbole_llmhni encode --profiles dataset/ml-100k/ml-100k.item_profile.jsonl \\
            --output item_emb.npz [--encoder openai --model text-embedding-3-small] [--dry-run]

``label``
    Rate candidate pairs and write one JSON line per pair (``user_id``, ``item_id``,
    ``user_view``, ``item_view``, ``hard``) plus ``<output>.summary.json`` (rater, whether it
    is the offline stand-in, counts, tokens and cost)::

        python -m recbole_llmhni label --pairs pairs.jsonl --user-profiles U.jsonl \\
            --item-profiles I.jsonl --output ratings.jsonl --rater openai [--dry-run]

    Batch files for a local ``vllm run-batch`` (or any OpenAI batch runner):
    ``--export-batch requests.jsonl`` writes the calls the cache still lacks, one
    OpenAI batch line each (``custom_id`` = the cache key), and stops;
    ``--import-batch results.jsonl`` joins a results file into the cache and then writes the
    ratings. Answers that did not parse need a repair turn: export again, run, import again
    (each round writes only what is still missing)::

        python -m recbole_llmhni label ... --export-batch requests.jsonl
        vllm run-batch -i requests.jsonl -o results.jsonl --model <model>
        python -m recbole_llmhni label ... --import-batch results.jsonl [--export-batch next.jsonl]

    ``pairs.jsonl`` has one object per line: ``user_id``, ``item_id`` (raw tokens), optional
    ``liked_item_ids`` (the user's L best-scored liked items, for the item-centric view) and
    optional ``user_relevance`` / ``item_relevance`` (needed by the semantic rater).

Settings come from ``--config`` YAML files (the same flat ``llmhni_*`` keys as the RecBole
config; other keys are ignored), then ``--set KEY=VALUE``, then the dedicated flags. A killed
or budget-stopped run loses nothing: run the same command again and only the missing calls
are made. ``--dry-run`` prints calls, estimated tokens and cost, and sends nothing.

Exit status: 0 done (or batch requests exported), 2 bad input (``error: ...`` names the
file/line/id), 3 budget reached, 4 the API failed for good, 5 an imported batch left calls
unanswered (export them again), 130 interrupted.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

from recbole_llmhni.artifacts.files import atomic_write_text, read_jsonl
from recbole_llmhni.artifacts.vectors import write_vector_npz
from recbole_llmhni.cli.args import parse_key_values

__all__ = ["register", "run_encode", "run_label", "load_settings", "read_pairs"]

_LOGGER_NAME = "recbole_llmhni"

EXIT_BUDGET = 3
EXIT_API = 4
EXIT_INCOMPLETE = 5
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------- parser
def _add_common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (later ones win)")
    group.add_argument("--config", action="append", default=[], metavar="YAML",
                       help="YAML file with llmhni_* keys (repeatable; other keys are ignored)")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="one llmhni_* setting, e.g. --set llmhni_max_concurrency=16 (repeatable)")
    group.add_argument("--base-url", metavar="URL", help="OpenAI-compatible server (llmhni_api_base_url)")
    group.add_argument("--max-concurrency", type=int, metavar="N", help="requests in flight (llmhni_max_concurrency)")
    group.add_argument("--budget", type=float, metavar="USD", help="spending cap of this run (llmhni_budget_usd)")
    group.add_argument("--cache-dir", metavar="DIR", help="answer/embedding cache folder (llmhni_cache_dir)")
    run = parser.add_argument_group("run")
    run.add_argument("--dry-run", action="store_true",
                     help="print calls, estimated tokens and cost; send nothing, write no output")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars or step messages")
    run.add_argument("--log-file", metavar="FILE", help="also write the log to FILE")


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``encode`` and ``label`` to the top-level sub-parsers."""
    encode = subparsers.add_parser(
        "encode",
        help="S1: embed a profile file (local model, OpenAI embeddings, or precomputed vectors)",
        description="Embed every profile of a JSON-lines profile file and write an .npz with "
        "arrays 'ids' and 'embeddings'. Vectors are cached: a second run encodes nothing.",
    )
    encode.add_argument("--profiles", required=True, metavar="JSONL", help='profile file: {"id": ..., "profile": ...} per line')
    encode.add_argument("--output", required=True, metavar="NPZ", help="where to write ids + embeddings")
    encode.add_argument("--encoder", choices=["sentence-transformers", "openai", "precomputed"], help="llmhni_encoder")
    encode.add_argument("--model", metavar="NAME", help="llmhni_encoder_model")
    encode.add_argument("--batch-size", type=int, metavar="N", help="llmhni_encoder_batch_size")
    encode.add_argument("--kind", choices=["user", "item"], help="which precomputed file to read (precomputed encoder)")
    _add_common(encode)
    encode.set_defaults(func=run_encode)

    label = subparsers.add_parser(
        "label",
        help="S6: rate candidate pairs High/Medium/Low from two views (LLM or semantic stand-in)",
        description="Rate each candidate pair user-centrically and item-centrically and write "
        "one JSON line per pair. Answers are cached as they arrive: a killed run resumes.",
    )
    label.add_argument("--pairs", required=True, metavar="JSONL",
                       help="pairs: {user_id, item_id, liked_item_ids?, user_relevance?, item_relevance?} per line")
    label.add_argument("--user-profiles", metavar="JSONL", help="user profile file (needed by the openai rater)")
    label.add_argument("--item-profiles", metavar="JSONL", help="item profile file (needed by the openai rater)")
    label.add_argument("--output", required=True, metavar="JSONL", help="ratings to write (+ .summary.json)")
    label.add_argument("--rater", choices=["openai", "semantic"], help="llmhni_rater")
    label.add_argument("--model", metavar="NAME", help="llmhni_rater_model (e.g. gpt-4o)")
    label.add_argument("--export-batch", metavar="JSONL",
                       help="write the calls still missing as OpenAI batch lines (for vllm run-batch) and stop")
    label.add_argument("--import-batch", metavar="JSONL",
                       help="join a batch results file (vllm run-batch / OpenAI output) into the cache first")
    _add_common(label)
    label.set_defaults(func=run_label)


# --------------------------------------------------------------------------- settings
def load_settings(args: argparse.Namespace, flags: Mapping[str, Any]) -> "Any":
    """The :class:`LLMSettings` of a command: YAML files, then ``--set``, then ``flags``."""
    import yaml

    from recbole_llmhni.llm.settings import LLM_KEYS, LLMSettings

    allowed = set(LLM_KEYS) | {"show_progress"}

    config: Dict[str, Any] = {}
    for path in args.config:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of keys to values at the top level")
        config.update({k: v for k, v in data.items() if k in allowed})
    config.update(parse_key_values(args.overrides, allowed))
    # pairs from a file have no training positives to calibrate quantiles on: relevance values
    config.setdefault("llmhni_semantic_thresholds", "absolute")
    common = {
        "llmhni_api_base_url": args.base_url,
        "llmhni_max_concurrency": args.max_concurrency,
        "llmhni_budget_usd": args.budget,
        "llmhni_cache_dir": args.cache_dir,
    }
    config.update({k: v for k, v in {**common, **flags}.items() if v is not None})
    config["show_progress"] = not args.quiet and bool(config.get("show_progress", True))
    return LLMSettings.from_config(config)


@contextlib.contextmanager
def _logging(quiet: bool, log_file: Optional[str]) -> Iterator[None]:
    """Route the package's log records to stderr (and ``log_file``), API key masked."""
    from recbole_llmhni.llm.redact import RedactingFormatter

    log = logging.getLogger(_LOGGER_NAME)
    handlers: List[logging.Handler] = []
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(RedactingFormatter("%(levelname)s: %(message)s"))
    stderr.setLevel(logging.WARNING if quiet else logging.INFO)
    handlers.append(stderr)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        file_handler.setLevel(logging.DEBUG)
        handlers.append(file_handler)
    saved = (log.level, log.propagate)
    for handler in handlers:
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if log_file else (logging.WARNING if quiet else logging.INFO))
    log.propagate = False
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _report_llm_error(exc: BaseException) -> int:
    from recbole_llmhni.llm.errors import BudgetExceededError
    from recbole_llmhni.llm.redact import redact

    print(f"error: {redact(exc)}", file=sys.stderr)
    return EXIT_BUDGET if isinstance(exc, BudgetExceededError) else EXIT_API


# --------------------------------------------------------------------------- files
PAIRS_EXAMPLE = '{"user_id": "<raw id>", "item_id": "<raw id>"}'


def read_pairs(path: Path) -> List[Dict[str, Any]]:
    """Read a pairs file; errors name the file, the line and the fix."""
    pairs: List[Dict[str, Any]] = []
    for lineno, record in read_jsonl(path, "pairs file", PAIRS_EXAMPLE):
        if "user_id" not in record or "item_id" not in record:
            raise ValueError(
                f"{path}, line {lineno}: expected an object with 'user_id' and 'item_id' "
                "(optional: 'liked_item_ids', 'user_relevance', 'item_relevance')."
            )
        liked = record.get("liked_item_ids", [])
        if not isinstance(liked, list):
            raise ValueError(f"{path}, line {lineno}: 'liked_item_ids' must be a list of item ids.")
        for name in ("user_relevance", "item_relevance"):
            value = record.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            ):
                raise ValueError(f"{path}, line {lineno}: '{name}' must be a finite number, not {value!r}.")
        record["_line"] = lineno
        record["user_id"], record["item_id"] = str(record["user_id"]), str(record["item_id"])
        record["liked_item_ids"] = [str(i) for i in liked]
        pairs.append(record)
    return pairs


def _requests(
    pairs: List[Dict[str, Any]],
    pairs_path: Path,
    users: Optional[Mapping[str, str]],
    items: Optional[Mapping[str, str]],
    user_file: Optional[str],
    item_file: Optional[str],
) -> List[Any]:
    from recbole_llmhni.llm.raters import RatingRequest

    def profile(table: Optional[Mapping[str, str]], raw_id: str, what: str, source: Optional[str], line: int) -> str:
        if table is None:
            return ""
        if raw_id not in table:
            raise ValueError(
                f"{pairs_path}, line {line}: {what} id {raw_id!r} has no profile in {source}; add its "
                "profile or drop the pair."
            )
        return table[raw_id]

    requests = []
    for pair in pairs:
        line = pair["_line"]
        requests.append(
            RatingRequest(
                user_id=pair["user_id"],
                item_id=pair["item_id"],
                user_profile=profile(users, pair["user_id"], "user", user_file, line),
                item_profile=profile(items, pair["item_id"], "item", item_file, line),
                liked_item_profiles=[profile(items, j, "liked item", item_file, line) for j in pair["liked_item_ids"]]
                if items is not None else [],
                user_relevance=pair.get("user_relevance"),
                item_relevance=pair.get("item_relevance"),
            )
        )
    return requests


def _batch_files(rater: Any, requests: List[Any], import_path: Optional[str], export_path: Optional[str]) -> Optional[int]:
    """Import a results file, then export what is still missing; an exit status, or None to rate on."""
    if import_path:
        if not Path(import_path).is_file():
            raise FileNotFoundError(f"{import_path}: batch results file not found")
        parsed = rater.import_batch(requests, import_path)
        print(f"imported {import_path}: {len(parsed.ok):,} answered lines, {len(parsed.failed):,} error lines, "
              f"{parsed.malformed:,} malformed lines")
    missing = len(rater.pending_batch(requests))
    if export_path:
        if missing:
            n = rater.export_batch(requests, export_path)
            print(f"wrote {n:,} batch requests to {export_path}; run them (e.g. vllm run-batch -i {export_path} "
                  f"-o results.jsonl --model <model>), then run this command with --import-batch results.jsonl")
            return 0
        print("every call is answered in the cache: nothing to export")
    elif missing:
        print(f"error: {missing:,} calls are still unanswered (error lines, malformed lines, or repair turns of "
              "answers that did not parse); write them with --export-batch, run them, and import the results.",
              file=sys.stderr)
        return EXIT_INCOMPLETE
    return None


# --------------------------------------------------------------------------- commands
def run_encode(args: argparse.Namespace) -> int:
    """``encode``: profiles -> ``.npz`` (ids, embeddings)."""
    from recbole_llmhni.data.profiles import read_profiles
    from recbole_llmhni.llm.errors import LLMError
    from recbole_llmhni.llm.factory import make_encoder

    settings = load_settings(args, {
        "llmhni_encoder": args.encoder,
        "llmhni_encoder_model": args.model,
        "llmhni_encoder_batch_size": args.batch_size,
    })
    with _logging(args.quiet, args.log_file):
        profiles = read_profiles(args.profiles)
        if not profiles:
            raise ValueError(f"{args.profiles}: no profiles in the file; nothing to encode.")
        encoder = make_encoder(settings)
        try:
            if args.dry_run:
                print(encoder.plan(profiles, kind=args.kind).format())
                return 0
            try:
                vectors = encoder.encode(profiles, kind=args.kind)
            except LLMError as exc:
                return _report_llm_error(exc)
            except KeyboardInterrupt:
                print("interrupted: vectors computed so far are cached; run again to continue.", file=sys.stderr)
                return EXIT_INTERRUPTED
            write_vector_npz(Path(args.output), list(profiles), vectors)
            stats = encoder.stats
            print(
                f"encoded {stats.get('requested', len(profiles)):,} profiles "
                f"({stats.get('unique', len(profiles)):,} distinct texts) with {encoder.name}: "
                f"{stats.get('encoded', 0):,} computed, {stats.get('cache_hits', 0):,} from the cache; "
                f"{vectors.shape[0]:,} x {vectors.shape[1]} written to {args.output}"
            )
            ledger = getattr(encoder, "ledger", None)
            if ledger is not None and ledger.requests:
                s = ledger.summary()
                print(f"API: {s['requests']:,} requests, {s['prompt_tokens']:,} tokens, ${s['cost_usd']:.6f}")
            return 0
        finally:
            encoder.close()


def run_label(args: argparse.Namespace) -> int:
    """``label``: pairs -> ratings JSONL + summary JSON."""
    from recbole_llmhni.data.profiles import read_profiles
    from recbole_llmhni.llm.errors import LLMError
    from recbole_llmhni.llm.factory import make_rater

    settings = load_settings(args, {"llmhni_rater": args.rater, "llmhni_rater_model": args.model})
    with _logging(args.quiet, args.log_file):
        pairs_path = Path(args.pairs)
        pairs = read_pairs(pairs_path)
        if settings.rater == "openai" and not (args.user_profiles and args.item_profiles):
            raise ValueError("the openai rater needs --user-profiles and --item-profiles (JSON-lines profile files).")
        users = read_profiles(args.user_profiles) if args.user_profiles else None
        items = read_profiles(args.item_profiles) if args.item_profiles else None
        requests = _requests(pairs, pairs_path, users, items, args.user_profiles, args.item_profiles)
        rater = make_rater(settings)
        try:
            if args.dry_run:
                print(rater.plan(requests).format())
                return 0
            if args.export_batch or args.import_batch:
                if rater.is_stand_in:
                    raise ValueError("--export-batch / --import-batch need the openai rater (--rater openai).")
                status = _batch_files(rater, requests, args.import_batch, args.export_batch)
                if status is not None:
                    return status
            try:
                ratings = rater.rate(requests)
            except LLMError as exc:
                return _report_llm_error(exc)
            except KeyboardInterrupt:
                print("interrupted: answers received so far are cached; run again to continue.", file=sys.stderr)
                return EXIT_INTERRUPTED
            output = Path(args.output)
            atomic_write_text(output, "".join(json.dumps(r.to_dict()) + "\n" for r in ratings))
            summary = {
                "rater": rater.name,
                "stand_in": rater.is_stand_in,
                "pairs": len(ratings),
                "hard": sum(r.is_hard for r in ratings),
                "not_hard": sum(not r.is_hard for r in ratings),
                "pairs_with_unparsed_view": sum(r.is_unparsed for r in ratings),
                "views": getattr(rater, "last_counts", {}),
                "ledger": rater.ledger.summary(),
                "settings": settings.public_dict(),
            }
            summary_path = output.with_name(output.name + ".summary.json")
            atomic_write_text(summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
            kind = " (offline STAND-IN for an LLM)" if rater.is_stand_in else ""
            print(
                f"rated {len(ratings):,} pairs with {rater.name}{kind}: {summary['hard']:,} hard, "
                f"{summary['not_hard']:,} not hard, {summary['pairs_with_unparsed_view']:,} with an unparsed view"
            )
            ledger = summary["ledger"]
            if ledger["requests"]:
                print(
                    f"API: {ledger['requests']:,} requests, {ledger['prompt_tokens']:,} prompt + "
                    f"{ledger['completion_tokens']:,} completion tokens, ${ledger['cost_usd']:.6f}"
                )
            print(f"wrote {output} and {summary_path}")
            return 0
        finally:
            rater.close()

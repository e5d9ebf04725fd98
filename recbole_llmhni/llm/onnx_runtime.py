r"""The ONNX Runtime form of a local sentence-transformers model (``llmhni_encoder_backend: onnx | onnx-int8``).

The transformer of the already-loaded ``SentenceTransformer`` (local weights, never
downloaded) is exported once with ``torch.onnx.export`` into
``<llmhni_cache_dir>/onnx/<model>-<fingerprint>/model.onnx``; ``onnx-int8`` then fuses the
graph with ONNX Runtime's BERT optimizer and quantises every MatMul's weights to int8 per
output channel (dynamic quantisation: activations are quantised on the fly), stored beside it
as ``model.int8.onnx``. Later runs load the files directly. The fingerprint digests the
weights file (size, mtime), the exporter and the opset, so new weights export anew.

Pooling and normalisation are done here, exactly as sentence-transformers' ``Pooling(mean)``
and ``Normalize`` modules do:

.. math::
    e = \frac{\bar h}{\lVert \bar h \rVert_2}, \qquad
    \bar h = \frac{\sum_t m_t h_t}{\max(\sum_t m_t, 10^{-9})},

with :math:`h_t` the last hidden state of token :math:`t` and :math:`m_t` the attention mask.
Only models built as Transformer + mean Pooling (+ Normalize) are accepted; the fp32 export
reproduces the torch vectors to float rounding (max abs difference ~1e-7 on amazon-books
profiles), so it shares their cache key. Sources: ONNX Runtime docs, "Quantize ONNX models"
(dynamic quantisation) and ``onnxruntime.transformers.optimizer``; sentence-transformers'
``models.Pooling``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

__all__ = ["OnnxSentenceModel", "export_onnx", "INPUT_NAMES"]

logger = logging.getLogger("recbole_llmhni.llm")

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17
_FAST_HINT = "pip install 'recbole-llmhni[fast]' (onnxruntime and onnx)"


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"llmhni_encoder_backend=onnx needs the package {module.split('.')[0]}: {_FAST_HINT}.") from None


def _check_layout(st_model: Any) -> bool:
    """``normalize``: whether the model ends with a Normalize module; refuses other poolings."""
    modules = list(st_model)
    names = [type(m).__name__ for m in modules]
    pooling = next((m for m in modules if type(m).__name__ == "Pooling"), None)
    mode = getattr(pooling, "pooling_mode", None) or (
        "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else None
    )
    if names[:2] != ["Transformer", "Pooling"] or mode != "mean" or any(n not in ("Transformer", "Pooling", "Normalize") for n in names):
        raise ValueError(
            f"llmhni_encoder_backend=onnx supports Transformer + mean Pooling (+ Normalize) models; this one is "
            f"{' + '.join(names)} (pooling {mode!r}). Use llmhni_encoder_backend=torch."
        )
    return "Normalize" in names


def _fingerprint(source: str) -> str:
    import torch

    weights = sorted(Path(source).glob("*.safetensors")) + sorted(Path(source).glob("*.bin"))
    parts = [str(Path(source).resolve()), torch.__version__, str(_OPSET)]
    parts += [f"{w.name}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _export_fp32(st_model: Any, target: Path) -> None:
    import torch

    hf = st_model[0].auto_model

    class LastHidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: D401 - export signature
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = st_model.tokenizer(["an example", "a second, longer example text"], padding=True, return_tensors="pt")
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUT_NAMES, "last_hidden_state")}
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        path = Path(tmp) / target.name
        with torch.no_grad():
            torch.onnx.export(
                LastHidden(hf).eval(), tuple(sample[n] for n in INPUT_NAMES), str(path),
                input_names=list(INPUT_NAMES), output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=_OPSET, dynamo=False,
            )
        os.replace(path, target)


def _quantise(fp32: Path, target: Path, st_model: Any) -> None:
    onnx = _require("onnx")
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    config = st_model[0].auto_model.config
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fused = Path(tmp) / "fused.onnx"
        optimizer.optimize_model(
            str(fp32), model_type="bert", num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size), opt_level=1,
        ).save_model_to_file(str(fused))
        out = Path(tmp) / target.name
        quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        os.replace(out, target)


def export_onnx(st_model: Any, source: str, folder: Path, int8: bool) -> Path:
    """The ONNX file of ``st_model`` (exported into ``folder`` on first use); ``int8``: the quantised one."""
    _require("onnxruntime")
    _require("onnx")
    target_dir = Path(folder) / f"{Path(source).name}-{_fingerprint(source)}"
    target_dir.mkdir(parents=True, exist_ok=True)
    fp32 = target_dir / "model.onnx"
    if not fp32.is_file():
        logger.info("exporting %s to ONNX in %s (once)", Path(source).name, target_dir)
        _export_fp32(st_model, fp32)
    if not int8:
        return fp32
    quantised = target_dir / "model.int8.onnx"
    if not quantised.is_file():
        logger.info("quantising %s to int8 (once)", fp32)
        _quantise(fp32, quantised, st_model)
    return quantised


class OnnxSentenceModel:
    """``encode(texts) -> float32 [n, d]`` with ONNX Runtime, pooled and normalised as the torch model."""

    def __init__(self, path: Path, st_model: Any, threads: int) -> None:
        ort = _require("onnxruntime")
        self.normalize = _check_layout(st_model)
        self.tokenizer = st_model.tokenizer
        self.max_length = int(st_model.max_seq_length)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        batch: Dict[str, Any] = self.tokenizer(list(texts), padding=True, truncation=True,
                                               max_length=self.max_length, return_tensors="np")
        if "token_type_ids" not in batch:
            batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
        feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in self.inputs}
        hidden = self.session.run(None, feeds)[0]
        mask = np.asarray(batch["attention_mask"], dtype=np.float32)[..., None]
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        if self.normalize:
            pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.astype(np.float32, copy=False)

    def token_lengths(self, texts: Sequence[str]) -> List[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]]

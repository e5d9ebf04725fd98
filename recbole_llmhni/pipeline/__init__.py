"""The offline stages S1-S7 as one pipeline that runs before the model is built.

:class:`LLMHNIPipeline` (:mod:`.pipeline`) runs or reuses each stage and returns a
:class:`PipelineResult` (:mod:`.results`): the semantic vectors, :math:`G'` with provenance,
``Rec_pre``'s weights when a warm start needs them, and one :class:`StageReport` per stage.
Also runnable alone: ``python -m recbole_llmhni pipeline --model=M --dataset=D [--key=value]``.
"""
from recbole_llmhni._lazy import lazy_getattr

_EXPORTS = {
    "LLMHNIPipeline": "recbole_llmhni.pipeline.pipeline",
    "StagePlan": "recbole_llmhni.pipeline.pipeline",
    "PipelineResult": "recbole_llmhni.pipeline.results",
    "StageReport": "recbole_llmhni.pipeline.results",
    "DenoisedGraph": "recbole_llmhni.pipeline.results",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

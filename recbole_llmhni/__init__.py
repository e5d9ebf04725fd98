"""recbole-llmhni: LLMHNI (hard vs. noisy sample identification with LLMs) as a RecBole plugin.

Importing the package applies :mod:`recbole_llmhni.compat` (RecBole 1.2.1 on numpy 2,
scipy >= 1.13, torch >= 2.6). Heavy modules (RecBole's data pipeline, the models, the LLM
clients) are imported lazily, on first use.

Paper: Hard vs. Noise: Resolving Hard-Noisy Sample Confusion in Recommender Systems via
Large Language Models, arXiv:2511.07295.
"""
from recbole_llmhni import compat as _compat

_compat.apply()

from recbole_llmhni._version import __version__  # noqa: E402

__all__ = ["run_recbole_llmhni", "__version__"]


def __getattr__(name):  # lazy: ``from recbole_llmhni import run_recbole_llmhni``
    if name == "run_recbole_llmhni":
        from recbole_llmhni.quick_start import run_recbole_llmhni

        return run_recbole_llmhni
    raise AttributeError(f"module 'recbole_llmhni' has no attribute {name!r}")

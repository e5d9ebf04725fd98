"""Dataset converters: turn published layouts into RecBole atomic files plus LLMHNI side files."""
from recbole_llmhni.prepare.rlmrec import PreparedDataset, RLMRecFormatError, prepare_rlmrec

__all__ = ["PreparedDataset", "RLMRecFormatError", "prepare_rlmrec"]

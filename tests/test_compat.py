"""The compat shims restore exactly what RecBole 1.2.1 needs on today's numpy/scipy/torch."""
import numpy as np
import scipy.sparse as sp
import torch

from recbole_llmhni import compat


def test_numpy_aliases_restored():
    compat.apply()
    assert np.float_ is np.float64 and np.complex_ is np.complex128
    assert np.dtype(np.float).kind == "f" and np.dtype(np.int).kind == "i"  # RecBole may rebind them to float64 / int64
    assert np.dtype(np.bool).kind == "b" and np.dtype(np.long).kind == "i"
    # RecBole's own alias code (run by every Config) works on top of them
    from recbole.config import Config

    Config.compatibility_settings(None)


def test_dok_update_builds_recbole_adjacency():
    compat.apply()
    A = sp.dok_matrix((3, 3), dtype=np.float32)
    A._update({(0, 1): 1, (1, 0): 1, (2, 2): 1})
    assert A.nnz == 3
    np.testing.assert_array_equal(A.toarray(), [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert np.asarray((A > 0).sum(axis=1)).ravel().tolist() == [1, 1, 1]


def test_apply_is_idempotent():
    compat.apply()
    compat.apply()
    assert np.dtype(np.float).kind == "f" and np.float_ is np.float64


class Opaque:  # stands in for RecBole's Config object inside a checkpoint
    def __init__(self):
        self.value = 3


def test_trusted_checkpoint_round_trip(tmp_path):
    """RecBole checkpoints pickle the Config: plain torch.load refuses them on torch >= 2.6."""
    path = tmp_path / "ckpt.pth"
    torch.save({"config": Opaque(), "state_dict": {"w": torch.ones(2)}}, path)
    try:
        torch.load(path)
        plain_load_refuses = False
    except Exception:
        plain_load_refuses = True
    assert plain_load_refuses  # the reason for the shim
    loaded = compat.load_trusted_checkpoint(str(path))
    assert loaded["config"].value == 3
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_trusted_trainer_is_a_subclass_and_cached():
    from recbole.trainer import Trainer

    cls = compat.trusted_checkpoint_trainer(Trainer)
    assert issubclass(cls, Trainer) and cls.__name__ == "Trainer"
    assert compat.trusted_checkpoint_trainer(Trainer) is cls


def test_dynamic_negative_sampling_keeps_the_best_scored_candidate_and_restores_predict(recbole_workdir, tiny_dataset):
    # RecBole's DNS indexes CPU candidate ids with the argmax of the model's scores; the shim
    # hands the scores back on the CPU (on CUDA RecBole 1.2.1 fails there). Here: scores =
    # item id, so every chosen negative must be the largest of its candidates.
    import torch
    from recbole.data import data_preparation

    from recbole_llmhni import compat
    from recbole_llmhni.config import LLMHNIConfig
    from recbole_llmhni.data.dataset import LLMHNIDataset

    compat.install_device_safe_dynamic_sampling()  # run_recbole_llmhni installs it
    compat.install_device_safe_dynamic_sampling()  # idempotent
    dns = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": True, "candidate_num": 4}
    config = LLMHNIConfig(model="LightGCN", dataset="tiny", config_dict={
        "data_path": tiny_dataset["data_path"], "train_neg_sample_args": dns, "train_batch_size": 16})
    train_data, _, _ = data_preparation(config, LLMHNIDataset(config))

    class ItemIdScorer(torch.nn.Module):
        device = torch.device("cpu")

        def __init__(self):
            super().__init__()
            self.seen = []

        def predict(self, interaction):
            ids = interaction[config["ITEM_ID_FIELD"]]
            self.seen.append(ids.clone())
            return ids.float()

    model = ItemIdScorer()
    train_data.get_model(model)
    batch = next(iter(train_data))
    candidates = model.seen[-1].reshape(4, -1)
    assert torch.equal(batch[config["NEG_PREFIX"] + config["ITEM_ID_FIELD"]], candidates.max(dim=0).values)
    assert "predict" not in vars(model)  # the class's method again after sampling


_CHAINED = (
    "A value is trying to be set on a copy of a DataFrame or Series through chained assignment "
    "using an inplace method."
)


def _shown(message: str, category: type, module: str) -> bool:
    """Whether a warning raised from ``module`` shows once the compat filters are installed."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # everything shows, except what compat filters
        compat.quiet_third_party_warnings()
        warnings.warn_explicit(message, category, filename=f"{module.replace('.', '/')}.py", lineno=1, module=module)
    return len(caught) == 1


def test_recbole_pandas_future_warnings_are_filtered_and_nothing_else():
    # RecBole's dataset code: the pandas chained-assignment FutureWarning is filtered
    assert not _shown(_CHAINED, FutureWarning, "recbole.data.dataset.dataset")
    assert not _shown("Downcasting object dtype arrays on .fillna is deprecated", FutureWarning,
                      "recbole.data.dataset.dataset")
    # the same text from the plugin or another library still shows
    assert _shown(_CHAINED, FutureWarning, "recbole_llmhni.data.dataset")
    assert _shown(_CHAINED, FutureWarning, "otherlib.frame")
    # another category, or another FutureWarning, of RecBole's dataset module still shows
    assert _shown(_CHAINED, DeprecationWarning, "recbole.data.dataset.dataset")
    assert _shown("something else will change", FutureWarning, "recbole.data.dataset.dataset")
    # a plugin UserWarning shows
    assert _shown("llmhni_profile_field is empty", UserWarning, "recbole_llmhni.semantic.encode")

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

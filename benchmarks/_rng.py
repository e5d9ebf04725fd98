"""Save and restore every random stream, so each benchmarked model draws the numbers it would
draw if it ran alone, although the benchmarks interleave their epochs."""
import random

import numpy as np
import torch


def rng_state():
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def set_rng_state(state) -> None:
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])
    if state[3] is not None:
        torch.cuda.set_rng_state_all(state[3])

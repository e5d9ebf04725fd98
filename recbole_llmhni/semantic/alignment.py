r"""S2, objective alignment: project frozen text embeddings into a recommendation space.

The text encoder (S1) is trained for language, not for preference: the raw cosine
:math:`\cos(e_u, e_i)` of a user's profile and an item's profile is a weak ranker (DESIGN.md
section 4). LLMHNI trains a small projection :math:`\mathrm{MLP}'` on *pseudo-labels* drawn from
the training interactions and uses the cosine of the projected vectors as the semantic
relevance.

Pseudo-labels (Eq. 6 of the paper, our reading). For each user :math:`u` with training items
:math:`\mathcal I_u`, the positives are the :math:`N` items of :math:`\mathcal I_u` closest to
the user's profile by raw cosine:

.. math::
    \mathcal P_u = \operatorname{top-}N_{\,i \in \mathcal I_u}\; \cos(e_u, e_i),
    \qquad \mathcal P = \{(u, i) : i \in \mathcal P_u\}.

Only *training* interactions are read: validation and test items never become labels.

Projection. Two layers with LeakyReLU, output L2-normalised:

.. math::
    z'_v = \frac{g(e_v)}{\lVert g(e_v)\rVert}, \qquad
    g(e) = W_2\, \mathrm{LeakyReLU}_{0.2}(W_1 \hat e + b_1) + b_2, \qquad
    \hat e = e / \lVert e \rVert,

with one MLP per side (``shared=False``, the default: a user profile and an item profile are
different kinds of text, and two towers let each side move into the common space on its own)
or one MLP for both (``shared=True``, the paper's single :math:`\mathrm{MLP}'`). The semantic
relevance is :math:`s(u, i) = \cos(z'_u, z'_i) = z'^\top_u z'_i \in [-1, 1]`.

Objective. Symmetric InfoNCE over a batch :math:`\{(u_b, i_b)\}_{b=1}^B \subset \mathcal P`
with in-batch negatives and temperature :math:`\tau`:

.. math::
    \mathcal L = -\frac{1}{2B} \sum_{b=1}^{B} \Big[
        \log \frac{\exp(z'^\top_{u_b} z'_{i_b} / \tau)}{\sum_{c} \exp(z'^\top_{u_b} z'_{i_c} / \tau)}
      + \log \frac{\exp(z'^\top_{i_b} z'_{u_b} / \tau)}{\sum_{c} \exp(z'^\top_{i_b} z'_{u_c} / \tau)}
    \Big],

where a column :math:`c \ne b` whose item equals :math:`i_b` (first term) or whose user equals
:math:`u_b` (second term) is left out of the denominator: it is the same node, not a negative.

Defaults (:class:`AlignmentSettings`) were chosen on validation Recall@20 of :math:`s` alone
(``python -m recbole_llmhni align-check``; all-MiniLM-L6-v2; raw cosine 0.017 on amazon-books,
0.024 on ml-100k): on amazon-books :math:`\tau` = 0.1 / 0.2 / 0.5 / 1.0 gave 0.057 / 0.056 /
0.040 / 0.028 at 20 epochs, 0.064 with :math:`\tau` = 0.2 at 40 epochs; one shared MLP 0.050
against 0.056 for two; :math:`N` = 20 0.054. On ml-100k :math:`\tau` = 0.2 at 40 epochs gave
0.086 (0.5 at 20 epochs 0.092); batch 256 beat 1024 on both.

All randomness (initial weights, batch order) comes from ``AlignmentSettings.seed`` through a
private generator, so the result is reproducible and the caller's global random stream is
left untouched.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recbole_llmhni.config.defaults import config_get

__all__ = [
    "AlignmentSettings",
    "AlignmentResult",
    "ProjectionMLP",
    "ProfileAligner",
    "pseudo_labels",
    "info_nce",
    "train_alignment",
    "l2_normalize",
]


_KEYS = ("top_n", "hidden_size", "output_size", "epochs", "learning_rate", "temperature", "batch_size", "shared")


@dataclass(frozen=True)
class AlignmentSettings:
    """Hyperparameters of S2: the ``llmhni_align_*`` keys (defaults in ``properties/overall.yaml``)."""

    top_n: int  #: N, pseudo-positives per user (``llmhni_align_top_n``)
    hidden_size: int  #: width of the MLP's hidden layer (``llmhni_align_hidden_size``)
    output_size: int  #: dimension of z' (``llmhni_align_output_size``)
    epochs: int  #: passes over the pseudo-labels (``llmhni_align_epochs``)
    learning_rate: float  #: Adam step size (``llmhni_align_learning_rate``)
    temperature: float  #: tau of the InfoNCE loss (``llmhni_align_temperature``)
    batch_size: int  #: pseudo-label pairs per step (``llmhni_align_batch_size``)
    shared: bool  #: one MLP for users and items (``llmhni_align_shared``)
    seed: int  #: initial weights and batch order (RecBole's ``seed``)

    def __post_init__(self) -> None:
        for name in ("top_n", "hidden_size", "output_size", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"llmhni_align_{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"llmhni_align_learning_rate must be > 0, got {self.learning_rate!r}")
        if not self.temperature > 0:
            raise ValueError(f"llmhni_align_temperature must be > 0, got {self.temperature!r}")

    @classmethod
    def from_config(cls, config: Any) -> "AlignmentSettings":
        """The ``llmhni_align_*`` keys (and ``seed``, default 2020) of a RecBole Config or a mapping."""
        return cls(
            **{name: config_get(config, f"llmhni_align_{name}") for name in _KEYS},
            seed=int(config_get(config, "seed", 2020)),
        )

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AlignmentResult:
    """Output of :func:`train_alignment`: aligned vectors for *every* row of the inputs."""

    user_z: np.ndarray  #: ``[n_users, output_size]`` float32, unit rows (zero input -> zero row)
    item_z: np.ndarray  #: ``[n_items, output_size]`` float32
    losses: List[float]  #: mean InfoNCE of each epoch
    n_pairs: int  #: number of pseudo-label pairs
    state_dict: Dict[str, np.ndarray] = field(default_factory=dict)  #: MLP weights (numpy)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def pseudo_labels(
    users: np.ndarray,
    items: np.ndarray,
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    top_n: int,
) -> Tuple[np.ndarray, np.ndarray]:
    r"""The pseudo-positive pairs :math:`\mathcal P`: per user, the ``top_n`` training items by raw cosine.

    Args:
        users, items: the *training* interactions (internal ids, ``[E]``; duplicates count once).
        user_emb, item_emb: raw text embeddings indexed by internal id (any scale; cosine is used).
        top_n: :math:`N`. A user with at most :math:`N` training items keeps all of them.

    Returns:
        ``(users, items)`` int64 arrays, grouped by user, each user's items by decreasing cosine.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if users.shape != items.shape:
        raise ValueError(f"users and items differ in length: {users.size} vs {items.size}")
    if users.size == 0:
        return users, items
    n_items = int(max(items.max() + 1, item_emb.shape[0]))
    key = np.unique(users * n_items + items)
    users, items = key // n_items, key % n_items
    eu, ei = l2_normalize(user_emb), l2_normalize(item_emb)
    cos = np.einsum("ed,ed->e", eu[users], ei[items])
    order = np.lexsort((-cos, users))  # by user, then decreasing cosine
    users, items = users[order], items[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, users.size])
    rank = np.arange(users.size) - np.repeat(starts, counts)
    keep = rank < top_n
    return users[keep], items[keep]


class ProjectionMLP(nn.Module):
    r""":math:`g(e) = W_2\,\mathrm{LeakyReLU}_{0.2}(W_1 e + b_1) + b_2`, output L2-normalised."""

    def __init__(self, in_dim: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_size), nn.LeakyReLU(0.2), nn.Linear(hidden_size, output_size)
        )

    def forward(self, e: Tensor) -> Tensor:
        return F.normalize(self.net(e), p=2, dim=-1)


class ProfileAligner(nn.Module):
    """The user-side and item-side projections (the same module when ``shared``)."""

    def __init__(self, in_dim: int, hidden_size: int, output_size: int, shared: bool) -> None:
        super().__init__()
        self.shared = bool(shared)
        self.user_mlp = ProjectionMLP(in_dim, hidden_size, output_size)
        self.item_mlp = self.user_mlp if self.shared else ProjectionMLP(in_dim, hidden_size, output_size)

    def forward(self, user_e: Tensor, item_e: Tensor) -> Tuple[Tensor, Tensor]:
        return self.user_mlp(user_e), self.item_mlp(item_e)


def info_nce(user_z: Tensor, item_z: Tensor, users: Tensor, items: Tensor, temperature: float) -> Tensor:
    r"""Symmetric in-batch InfoNCE of the module docstring.

    Args:
        user_z, item_z: unit vectors of the batch's users and items, ``[B, d]`` (row ``b`` is pair ``b``).
        users, items: their ids ``[B]``; a column holding the same item (user) as row ``b`` is
            excluded from row ``b``'s user-to-item (item-to-user) denominator.
        temperature: :math:`\tau > 0`.
    """
    logits = user_z @ item_z.T / temperature  # [B, B]: row = user b, column = item c
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    same_item = (items.unsqueeze(1) == items.unsqueeze(0)) & ~eye
    same_user = (users.unsqueeze(1) == users.unsqueeze(0)) & ~eye
    target = torch.arange(logits.shape[0], device=logits.device)
    u2i = F.cross_entropy(logits.masked_fill(same_item, float("-inf")), target)
    i2u = F.cross_entropy(logits.T.masked_fill(same_user, float("-inf")), target)
    return 0.5 * (u2i + i2u)


def train_alignment(
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    settings: AlignmentSettings,
    show_progress: bool = False,
    device: Any = "cpu",
) -> AlignmentResult:
    r"""Train :class:`ProfileAligner` on the pseudo-labels of the training interactions.

    Args:
        user_emb, item_emb: raw text embeddings ``[n_users, d_e]`` / ``[n_items, d_e]`` by
            internal id (row 0, RecBole's padding, may be zero).
        users, items: training interactions (internal ids). Nothing else is read.
        settings: hyperparameters.
        show_progress: a tqdm bar over epochs with the running loss.
        device: where to train (the vectors come back as numpy either way).

    Returns:
        :class:`AlignmentResult` with :math:`z'` for every user and item row.
    """
    from tqdm import tqdm

    user_emb = l2_normalize(user_emb)
    item_emb = l2_normalize(item_emb)
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"user and item embeddings differ in width: {user_emb.shape[1]} vs {item_emb.shape[1]}")
    pu, pi = pseudo_labels(users, items, user_emb, item_emb, settings.top_n)
    if pu.size < 2:
        raise ValueError(f"alignment needs at least 2 training interactions, got {pu.size}")

    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):  # nn.Linear's init draws from the global stream
        torch.manual_seed(settings.seed)
        aligner = ProfileAligner(user_emb.shape[1], settings.hidden_size, settings.output_size, settings.shared)
    aligner = aligner.to(device)
    optimizer = torch.optim.Adam(aligner.parameters(), lr=settings.learning_rate)

    eu = torch.from_numpy(user_emb).to(device)
    ei = torch.from_numpy(item_emb).to(device)
    pair_users = torch.from_numpy(pu).to(device)
    pair_items = torch.from_numpy(pi).to(device)
    n_pairs = int(pu.size)
    batch = min(settings.batch_size, n_pairs)
    steps = math.ceil(n_pairs / batch)

    losses: List[float] = []
    bar = tqdm(range(settings.epochs), desc="align (InfoNCE)", disable=not show_progress, leave=False)
    aligner.train()
    for _ in bar:
        order = torch.randperm(n_pairs, generator=generator).to(device)
        total, seen = 0.0, 0
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            if idx.numel() < 2:  # a lone pair has no in-batch negative
                continue
            u, i = pair_users[idx], pair_items[idx]
            zu, zi = aligner(eu[u], ei[i])
            loss = info_nce(zu, zi, u, i, settings.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * idx.numel()
            seen += idx.numel()
        losses.append(total / seen)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")

    aligner.eval()
    with torch.no_grad():
        zu, zi = aligner(eu, ei)
    user_z = zu.cpu().numpy().astype(np.float32)
    item_z = zi.cpu().numpy().astype(np.float32)
    # a zero input (padding, or a profile the encoder mapped to 0) keeps a zero vector
    user_z[np.linalg.norm(user_emb, axis=1) == 0] = 0.0
    item_z[np.linalg.norm(item_emb, axis=1) == 0] = 0.0
    state = {k: v.detach().cpu().numpy() for k, v in aligner.state_dict().items()}
    return AlignmentResult(user_z=user_z, item_z=item_z, losses=losses, n_pairs=n_pairs, state_dict=state)

r"""The plain graph backbones as RecBole models: RecBole's LightGCN and NGCF maths on
:class:`~recbole_llmhni.models.graph_recommender.GraphRecommender`.

With ``llmhni_adj_layout: coo`` and the same config and seed, a backbone trains bit for bit
like RecBole's own model. The default ``csr`` layout differs only in float summation order
(``tests/test_backbones.py``). They also serve as LLMHNI's pre-trained scorer (``Rec_pre``).
"""
from __future__ import annotations

from recbole.model.init import xavier_normal_initialization, xavier_uniform_initialization
from torch import Tensor, nn

from recbole_llmhni.models.graph_recommender import GraphRecommender
from recbole_llmhni.models.propagation import LightGCNPropagation, NGCFPropagation

__all__ = ["BackboneLightGCN", "BackboneNGCF"]


class BackboneLightGCN(GraphRecommender):
    r"""LightGCN (He et al., SIGIR 2020), as RecBole's ``LightGCN``.

    Config: ``embedding_size``, ``n_layers``, ``reg_weight``, ``require_pow``.
    Regularisation on the *ego* embeddings of the batch (RecBole's ``EmbLoss``):

    .. math::
        \Omega = \frac{1}{B}\big(\lVert E^{(0)}_{u}\rVert + \lVert E^{(0)}_{i^+}\rVert
        + \lVert E^{(0)}_{i^-}\rVert\big)
        \quad\text{(squared and halved when ``require_pow``)}
    """

    def build_propagation(self, config) -> nn.Module:
        self.n_layers: int = config["n_layers"]
        return LightGCNPropagation(self.n_layers)

    def regularization(
        self, user: Tensor, pos: Tensor, neg: Tensor, u_e: Tensor, pos_e: Tensor, neg_e: Tensor
    ) -> Tensor:
        return self.reg_loss(
            self.user_embedding(user),
            self.item_embedding(pos),
            self.item_embedding(neg),
            require_pow=self.require_pow,
        )

    def reset_parameters(self) -> None:
        self.apply(xavier_uniform_initialization)


class BackboneNGCF(GraphRecommender):
    r"""NGCF (Wang et al., SIGIR 2019), as RecBole's ``NGCF``.

    Config: ``embedding_size``, ``hidden_size_list``, ``node_dropout``, ``message_dropout``,
    ``reg_weight``. Regularisation on the *propagated* rows of the batch:
    :math:`\Omega = \frac1B(\lVert e_u\rVert + \lVert e_{i^+}\rVert + \lVert e_{i^-}\rVert)`.
    """

    def build_propagation(self, config) -> nn.Module:
        return NGCFPropagation(
            self.embedding_size,
            config["hidden_size_list"],
            node_dropout=config["node_dropout"],
            message_dropout=config["message_dropout"],
        )

    def regularization(
        self, user: Tensor, pos: Tensor, neg: Tensor, u_e: Tensor, pos_e: Tensor, neg_e: Tensor
    ) -> Tensor:
        return self.reg_loss(u_e, pos_e, neg_e)

    def reset_parameters(self) -> None:
        self.apply(xavier_normal_initialization)

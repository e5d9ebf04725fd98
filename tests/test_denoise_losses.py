"""S8 loss functions: L_de (cross_graph_infonce) and L_hal (view_contrast)."""
import math

import pytest
import torch
import torch.nn.functional as F

from recbole_llmhni.models.losses import cross_graph_infonce, info_nce, view_contrast

LOSSES = [cross_graph_infonce, view_contrast]


def _views(n_users=6, n_items=8, d=4, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    make = lambda n: torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_(requires_grad)  # noqa: E731
    return (make(n_users), make(n_items)), (make(n_users), make(n_items))


def _reference_infonce(a, b, tau):
    """Row-by-row loop of the documented formula."""
    total = 0.0
    for k in range(a.shape[0]):
        sims = [F.cosine_similarity(a[k], b[m], dim=0) / tau for m in range(b.shape[0])]
        total += -(sims[k] - torch.logsumexp(torch.stack(sims), dim=0))
    return total / a.shape[0]


@pytest.mark.parametrize("loss", LOSSES)
def test_matches_the_documented_formula_on_distinct_batch_nodes(loss):
    h, h2 = _views()
    users = torch.tensor([1, 3, 3, 0, 1])  # duplicates count once
    items = torch.tensor([[2, 5], [5, 7], [0, 2], [7, 7], [2, 2]])
    got = loss(h, h2, users, items, tau=0.3)
    uu, ii = torch.tensor([0, 1, 3]), torch.tensor([0, 2, 5, 7])
    expected = _reference_infonce(h[0][uu], h2[0][uu], 0.3) + _reference_infonce(h[1][ii], h2[1][ii], 0.3)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("loss", LOSSES)
def test_finite_and_differentiable_into_both_views(loss):
    h, h2 = _views()
    users, items = torch.tensor([0, 2, 4, 5]), torch.tensor([1, 3, 6, 7])
    out = loss(h, h2, users, items, tau=0.2)
    assert out.dim() == 0 and torch.isfinite(out)
    out.backward()
    for t in (*h, *h2):
        assert t.grad is not None and torch.isfinite(t.grad).all()
    # only the batch's rows get a gradient
    assert h[0].grad[[1, 3]].abs().sum() == 0 and h[0].grad[[0, 2, 4, 5]].abs().sum() > 0
    assert h2[1].grad[[0, 2, 4, 5]].abs().sum() == 0 and h2[1].grad[[1, 3, 6, 7]].abs().sum() > 0


@pytest.mark.parametrize("loss", LOSSES)
def test_gradcheck(loss):
    h, h2 = _views(n_users=4, n_items=5, d=3)
    users, items = torch.tensor([0, 1, 3]), torch.tensor([0, 2, 4])
    assert torch.autograd.gradcheck(lambda a, b, c, d: loss((a, b), (c, d), users, items, 0.5), (*h, *h2))


@pytest.mark.parametrize("loss", LOSSES)
def test_finite_on_degenerate_input(loss):
    zeros = (torch.zeros(3, 4, requires_grad=True), torch.zeros(3, 4, requires_grad=True))
    out = loss(zeros, zeros, torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), tau=0.05)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(zeros[0].grad).all()
    # no information about each other: every cosine is 0, loss = log n per node type
    assert out.item() == pytest.approx(2 * math.log(3))


@pytest.mark.parametrize("loss", LOSSES)
def test_agreeing_views_are_near_zero_and_lower_than_disagreeing_ones(loss):
    eye = torch.eye(6, dtype=torch.float64)
    h = (eye[:5] * 3.0, eye * 2.0)
    users, items = torch.arange(5), torch.arange(6)
    agree = loss(h, (eye[:5].clone(), eye.clone()), users, items, tau=0.05)
    assert agree.item() < 1e-6  # orthogonal nodes, matching views: positives dominate
    shuffled = (eye[:5][[1, 2, 3, 4, 0]], eye[[5, 0, 1, 2, 3, 4]])
    disagree = loss(h, shuffled, users, items, tau=0.05)
    assert disagree.item() > 10.0
    # with noisy views, agreement still gives the lower loss
    a, b = _views(seed=1, requires_grad=False)
    same = loss(a, a, users, torch.arange(8), 0.5)
    other = loss(a, b, users, torch.arange(8), 0.5)
    assert same < other


def test_positive_is_the_same_node_in_the_other_view():
    a = torch.eye(4)
    # b's row k equals a's row perm[k]: the loss is minimal only for the identity perm
    for perm, minimal in (([0, 1, 2, 3], True), ([1, 0, 2, 3], False)):
        value = info_nce(a, a[perm], tau=0.1).item()
        assert (value < 1e-3) is minimal


def test_empty_batch_and_bad_arguments():
    h, h2 = _views()
    out = cross_graph_infonce(h, h2, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 0.2)
    assert out.item() == 0.0
    out.backward()  # still a graph
    with pytest.raises(ValueError, match="temperature"):
        cross_graph_infonce(h, h2, torch.tensor([0]), torch.tensor([0]), 0.0)
    with pytest.raises(ValueError, match="shape"):
        info_nce(torch.zeros(3, 2), torch.zeros(3, 4), 0.1)


# --- SimGCL perturbation (llmhni_cl_eps) -----------------------------------------------------
from recbole_llmhni.models.losses import perturb  # noqa: E402


def test_perturb_off_is_identity_and_on_moves_each_row_by_eps_within_its_orthant():
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert perturb(x, 0.0) is x
    y = perturb(x, 0.3, torch.Generator().manual_seed(0))
    torch.testing.assert_close((y - x).norm(dim=1), torch.full((7,), 0.3, dtype=torch.float64))
    assert ((y - x) * torch.sign(x) >= 0).all()
    with pytest.raises(ValueError, match="eps"):
        perturb(x, -0.1)


@pytest.mark.parametrize("loss", LOSSES)
def test_perturbed_loss_is_finite_differentiable_and_breaks_scale_invariance(loss):
    h, h2 = _views()
    users, items = torch.tensor([0, 2, 4, 5]), torch.tensor([1, 3, 6, 7])
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    out = loss(h, h2, users, items, 0.2, eps=0.1, generator=gen())
    assert torch.isfinite(out)
    out.backward()
    assert all(torch.isfinite(t.grad).all() for t in (*h, *h2))
    scaled = lambda v, s: (v[0].detach() * s, v[1].detach() * s)  # noqa: E731
    # eps = 0: invariant to the embeddings' scale (the stall); eps > 0: it is not, and the
    # loss is lower for larger embeddings (their agreement outweighs the noise)
    plain = [loss(scaled(h, s), scaled(h, s), users, items, 0.2) for s in (0.1, 10.0)]
    torch.testing.assert_close(plain[0], plain[1])
    pert = [loss(scaled(h, s), scaled(h, s), users, items, 0.2, eps=0.1, generator=gen()) for s in (0.01, 10.0)]
    assert pert[1] < pert[0]
    # the perturbed loss with eps = 0 is the previous form
    torch.testing.assert_close(loss(h, h2, users, items, 0.2, eps=0.0, generator=gen()), loss(h, h2, users, items, 0.2))


# --- node subsample (llmhni_cl_nodes) and scale gate (llmhni_cl_scale_ref) --------------------
from recbole_llmhni.models.losses import scale_gate, subsample  # noqa: E402


def test_subsample_keeps_at_most_max_nodes_distinct_ids():
    ids = torch.arange(10, 30)
    assert subsample(ids, 0) is ids and subsample(ids, 50) is ids
    got = subsample(ids, 5, torch.Generator().manual_seed(0))
    assert got.numel() == 5 and len(set(got.tolist())) == 5 and set(got.tolist()) <= set(ids.tolist())


@pytest.mark.parametrize("loss", LOSSES)
def test_subsampled_loss_is_the_loss_on_the_drawn_nodes(loss):
    h, h2 = _views(n_users=6, n_items=8)
    users, items = torch.arange(6), torch.arange(8)
    assert torch.isfinite(loss(h, h2, users, items, 0.2, generator=torch.Generator().manual_seed(0), max_nodes=3))
    # max_nodes >= the distinct count: the plain loss
    torch.testing.assert_close(loss(h, h2, users, items, 0.2, max_nodes=8), loss(h, h2, users, items, 0.2))


def test_scale_gate_is_detached_and_caps_at_one():
    a = torch.full((4, 3), 0.1, requires_grad=True)
    b = torch.full((4, 3), 0.1, requires_grad=True)
    r2 = 0.1 * 0.1 * 3  # mean row norm squared
    assert scale_gate(a, b, 1.0).item() == pytest.approx(r2) and not scale_gate(a, b, 1.0).requires_grad
    assert scale_gate(a * 100, b * 100, 1.0).item() == 1.0
    assert scale_gate(a, b, 0.0).item() == 1.0  # off


@pytest.mark.parametrize("loss", LOSSES)
def test_gated_loss_gradient_grows_with_the_embeddings_scale(loss):
    # the plain InfoNCE gradient scales as 1/|x| (dominates BPR's, which scales as |x|, at a
    # small initial scale: the stall); gated below ref it scales as |x|, like BPR's
    h, h2 = _views(requires_grad=False)
    users, items = torch.arange(6), torch.arange(8)

    def grad_norm(scale, ref):
        a = (h[0] * scale).requires_grad_(), (h[1] * scale).requires_grad_()
        loss(a, (h2[0] * scale, h2[1] * scale), users, items, 0.2, scale_ref=ref).backward()
        return a[0].grad.norm().item()

    assert grad_norm(0.01, 0.0) == pytest.approx(100 * grad_norm(1.0, 0.0), rel=1e-6)
    assert grad_norm(0.01, 100.0) == pytest.approx(0.01 * grad_norm(1.0, 100.0), rel=1e-6)
    torch.testing.assert_close(loss(h, h2, users, items, 0.2, scale_ref=1e-9), loss(h, h2, users, items, 0.2))


@pytest.mark.parametrize("n_rows, n_cand", [(7, 3), (300, 5000), (1, 1)])
def test_row_logsumexp_equals_the_dense_form_in_value_and_gradient(n_rows, n_cand, monkeypatch):
    """Blocked log-sum-exp against the dense ``logsumexp(a @ c.T)``; small blocks force the kernel."""
    from recbole_llmhni.models import losses

    monkeypatch.setattr(losses, "LSE_BLOCK_ELEMENTS", 4 * n_cand)  # blocks of 4 rows
    g = torch.Generator().manual_seed(n_rows)
    a = torch.randn(n_rows, 5, generator=g, dtype=torch.float64) * 3
    c = torch.randn(n_cand, 5, generator=g, dtype=torch.float64)
    w = torch.rand(n_rows, generator=g, dtype=torch.float64)
    a1, c1 = a.clone().requires_grad_(), c.clone().requires_grad_()
    a2, c2 = a.clone().requires_grad_(), c.clone().requires_grad_()
    got = losses.row_logsumexp(a1, c1)
    want = torch.logsumexp(a2 @ c2.T, dim=1)
    (got * w).sum().backward()
    (want * w).sum().backward()
    assert torch.allclose(got, want, atol=1e-12)
    assert torch.allclose(a1.grad, a2.grad, atol=1e-12) and torch.allclose(c1.grad, c2.grad, atol=1e-12)


def test_row_logsumexp_by_hand_and_gradcheck(monkeypatch):
    from recbole_llmhni.models import losses

    # one row against candidates (1, 0) and (0, 1): log(e^2 + e^0) for a = (2, 0)
    assert math.isclose(float(losses.row_logsumexp(torch.tensor([[2.0, 0.0]]), torch.eye(2))[0]),
                        math.log(math.e ** 2 + 1), rel_tol=1e-6)
    monkeypatch.setattr(losses, "LSE_BLOCK_ELEMENTS", 6)  # blocks of 2 rows over 3 candidates
    a = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    c = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(losses.row_logsumexp, (a, c))
    with pytest.raises(ValueError, match="empty candidate set"):
        losses.row_logsumexp(a, c[:0])

"""SO(3) and SE(3) base manifolds and protein backbone frames (issue 17).

Oracles: scipy.spatial.transform.Rotation for exp/log/dist (1e-10 in float64, angles within 1e-6 of
π and 1e-8 of 0), an SVD nearest-rotation for projx, the pole ladder for the closed-form transport,
the exact Haar angle law (1 − cos θ)/π by a KS test, ∫p0 = 1 by Monte Carlo in exponential
coordinates, and ∫p = 1 for an untrained GaugeFlow (E_Haar[p/p0] = 1).
"""
import math
import sys

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.transform import Rotation

from gaugeflow.geometry._generic import pole_ladder
from gaugeflow.manifolds import SE3, SO3, SpecialEuclidean, SpecialOrthogonal
from gaugeflow.manifolds.so3 import hat
from gaugeflow.testing import PROPERTIES, check_manifold

F64 = torch.float64
M = SO3()
I9 = torch.eye(3, dtype=F64).reshape(9)


def _haar(n, seed, dtype=F64):
    return M.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _rotvecs(n, angle, seed=0):
    axis = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return axis / axis.norm(dim=-1, keepdim=True) * angle


def _matrix(rotvec):
    return torch.from_numpy(Rotation.from_rotvec(rotvec.numpy()).as_matrix()).reshape(-1, 9)


# ---------------------------------------------------------------- conformance
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("manifold", [SO3(), SE3()], ids=repr)
def test_check_manifold_passes_every_property(manifold, dtype):
    report = check_manifold(manifold, dtypes=[dtype], max_examples=12)
    assert {r.name for r in report.results} == set(PROPERTIES) and not report.skipped
    assert all(r.worst <= 1 for r in report.results), str(report)


def test_names_and_equality():
    assert SO3() == SpecialOrthogonal(3) and hash(SO3()) == hash(SpecialOrthogonal(3))
    assert SE3() == SpecialEuclidean(3, translation_scale=0.1) != SE3(translation_scale=1.0)
    assert (M.dim, M.ambient_dim, SE3().dim, SE3().ambient_dim) == (3, 9, 6, 12)
    assert M.random_base(5).shape == (5, 9)
    for bad in (lambda: SpecialOrthogonal(4), lambda: SE3(translation_scale=0.0)):
        with pytest.raises(ValueError, match="got"):
            bad()


# ---------------------------------------------------------------- scipy oracle
@pytest.mark.parametrize("angle", [0.3, 2.0, math.pi - 1e-6, math.pi - 1e-9, 1e-8, 1e-12, None])
def test_exp_log_dist_agree_with_scipy(angle):
    n = 400
    x = _haar(n, 1)
    rv = _rotvecs(n, angle) if angle is not None else torch.from_numpy(Rotation.random(n, random_state=3).as_rotvec())
    rel = _matrix(rv)  # x^T y
    y = (x.reshape(-1, 3, 3) @ rel.reshape(-1, 3, 3)).reshape(-1, 9)
    want_log = (x.reshape(-1, 3, 3) @ hat(rv)).reshape(-1, 9)
    assert (M.exp(x, want_log) - y).abs().max() < 1e-10
    ref = torch.from_numpy(Rotation.from_matrix(rel.reshape(-1, 3, 3).numpy()).as_rotvec())
    got = (x.reshape(-1, 3, 3).transpose(1, 2) @ M.log(x, y).reshape(-1, 3, 3))
    got = torch.stack([got[:, 2, 1], got[:, 0, 2], got[:, 1, 0]], -1)
    assert (got - ref).abs().max() < 1e-10
    assert (M.dist(x, y) - ref.norm(dim=-1)).abs().max() < 1e-10


def test_log_at_pi_is_deterministic_axis_of_length_pi():
    rv = _rotvecs(200, math.pi, seed=4)
    y = _matrix(rv)
    w = M.log(I9.expand_as(y), y).reshape(-1, 3, 3)
    w = torch.stack([w[:, 2, 1], w[:, 0, 2], w[:, 1, 0]], -1)
    assert torch.allclose(w.norm(dim=-1), torch.full((200,), math.pi, dtype=F64), atol=1e-12)
    assert torch.allclose(w.abs(), rv.abs(), atol=1e-7)  # ±axis
    k = w.abs().argmax(-1, keepdim=True)
    assert (w.gather(-1, k) > 0).all()  # the documented choice: largest component positive
    assert torch.equal(M.log(I9.expand_as(y), y), M.log(I9.expand_as(y), y.clone()))
    assert M.cut_locus_mask(I9.expand_as(y), y).all()


def test_projx_is_the_svd_nearest_rotation_with_det_fix():
    z = torch.randn(500, 9, generator=torch.Generator().manual_seed(2), dtype=F64)
    z[:250] = -_haar(250, 5) + 0.3 * z[:250]  # near reflections: the det fix matters
    U, _, Vt = np.linalg.svd(z.reshape(-1, 3, 3).numpy())
    d = np.sign(np.linalg.det(U @ Vt))
    want = U @ (np.eye(3)[None] * np.stack([np.ones_like(d), np.ones_like(d), d], -1)[:, None, :]) @ Vt
    assert (M.projx(z) - torch.from_numpy(want).reshape(-1, 9)).abs().max() < 1e-9
    assert (torch.linalg.det(M.projx(z).reshape(-1, 3, 3)) > 0).all()


def test_closed_form_transport_equals_pole_ladder_and_geodesic_velocity():
    x, y = _haar(300, 6), _haar(300, 7)
    v = M.proju(x, torch.randn(300, 9, generator=torch.Generator().manual_seed(8), dtype=F64))
    assert (M.transp(x, y, v) - pole_ladder(M, x, y, v)).abs().max() < 1e-9
    xt, ut = M.geodesic(x, y, torch.ones(300, dtype=F64))
    assert (ut - M.transp(x, y, M.log(x, y))).abs().max() < 1e-9 and (xt - y).abs().max() < 1e-12


# ---------------------------------------------------------------- gradients
def _gradcheck(fn, *args):
    leaves = [a.clone().requires_grad_(True) for a in args]
    return torch.autograd.gradcheck(fn, tuple(leaves), eps=1e-7, atol=1e-6, rtol=1e-4)


def test_gradcheck_at_degenerate_points_and_near_pi():
    x = _haar(3, 9)
    assert _gradcheck(M.exp, x, torch.zeros_like(x))
    assert _gradcheck(M.log, x, x.clone()) and _gradcheck(M.dist, x, x.clone())
    near_pi = (x.reshape(-1, 3, 3) @ _matrix(_rotvecs(3, math.pi - 1e-4, seed=10)).reshape(-1, 3, 3)).reshape(-1, 9)
    assert (M.dist(x, near_pi) - (math.pi - 1e-4)).abs().max() < 1e-12
    assert _gradcheck(M.log, x, near_pi) and _gradcheck(M.dist, x, near_pi)
    S = SE3()
    p = S.random_base(3, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert _gradcheck(S.exp, p, torch.zeros_like(p)) and _gradcheck(S.dist, p, p.clone())


# ---------------------------------------------------------------- base distributions
def test_haar_angle_law_by_ks_and_the_test_has_power():
    cdf = lambda t: (t - np.sin(t)) / np.pi  # noqa: E731  (∫₀^θ (1 − cos s)/π ds)
    theta = M.dist(I9, _haar(20000, 11)).numpy()
    assert stats.kstest(theta, cdf).pvalue > 0.01
    uniform_angle = _matrix(_rotvecs(20000, torch.rand(20000, 1, generator=torch.Generator().manual_seed(1),
                                                             dtype=F64) * math.pi))
    assert stats.kstest(M.dist(I9, uniform_angle).numpy(), cdf).pvalue < 1e-6


def test_base_densities_integrate_to_one_in_exponential_coordinates():
    """∫ p0 dvol = E_{ω ~ U(ball π)}[p0(Exp ω) · J(ω)] · vol(ball), J = (2 sin(θ/2)/θ)² (SO(3)'s volume element)."""
    g = torch.Generator().manual_seed(12)
    n = 200000
    d = torch.randn(n, 3, generator=g, dtype=F64)
    w = d / d.norm(dim=-1, keepdim=True) * math.pi * torch.rand(n, 1, generator=g, dtype=F64) ** (1 / 3)
    th = w.norm(dim=-1)
    jac = (2 * torch.sin(th / 2) / th) ** 2
    R = M.exp(I9, (hat(w)).reshape(-1, 9))
    est = (M.base_log_prob(R).exp() * jac).mean() * 4 / 3 * math.pi ** 4
    assert abs(float(est) - 1) < 0.01
    S = SE3(translation_scale=0.5)  # the translation part: p(t) w.r.t. s³ d³t, here integrated over a box
    t = (torch.rand(n, 3, generator=g, dtype=F64) - 0.5) * 24
    x = torch.cat([R, t], -1)
    est = (S.base_log_prob(x).exp() * jac).mean() * 4 / 3 * math.pi ** 4 * 24 ** 3 * 0.5 ** 3
    assert abs(float(est) - 1) < 0.03
    assert math.isclose(float(M.base_log_prob(I9)), -math.log(8 * math.pi ** 2))


def test_untrained_gauge_flow_on_so3_integrates_to_one():
    from gaugeflow.models import GaugeFlow
    from gaugeflow.sampling import log_prob

    torch.manual_seed(0)
    model = GaugeFlow(M, hidden=16, k=3).double()
    x = _haar(4000, 13)
    ratio = torch.exp(log_prob(model, x, steps=8) - M.base_log_prob(x))
    est, se = float(ratio.mean()), float(ratio.std() / math.sqrt(len(x)))
    assert float(ratio.std()) > 1e-3  # the flow is not the identity: the check has power
    assert abs(est - 1) < 0.05 and se < 0.02, (est, se)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("manifold", [SO3(), SE3()], ids=repr)
def test_bad_points_raise_value_error_naming_expected_and_received(manifold):
    good = manifold.random_base(4, dtype=F64)
    shear = good.clone()
    shear[:, 1] += 0.5
    reflect = good.clone()
    reflect[:, :9] = -reflect[:, :9]
    nan = good.clone()
    nan[2, 3] = math.nan
    cases = [(shear, "not orthogonal"), (reflect, "det R = -1"), (nan, "NaN"),
             (good[:, :8], f"last axis of size {manifold.ambient_dim}"), (good[:, :8], "(4, 8)")]
    for bad, words in cases:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            manifold.check_point(bad)
    with pytest.raises(ValueError, match="flattened row-major"):
        SO3().exp(torch.eye(3)[None], torch.zeros(1, 3, 3))


# ---------------------------------------------------------------- data and training
@pytest.fixture(scope="module")
def frames():
    pytest.importorskip("MDAnalysisTests", reason="protein data need the gaugeflow[protein] extra")
    from gaugeflow.data import protein_frames
    return protein_frames()


def test_protein_frames_on_so3_and_se3_split_by_trajectory_frame(frames):
    from gaugeflow.data import protein_frames

    assert frames.manifold == SO3() and frames.train.shape[1] == 9
    assert sum(len(s) for s in (frames.train, frames.val, frames.test)) == 98 * 214
    assert all(len(s) % 214 == 0 for s in (frames.train, frames.val, frames.test))  # whole frames
    se3 = protein_frames("se3", translation_scale=0.2)
    assert se3.manifold == SE3(translation_scale=0.2) and torch.equal(se3.train[:, :9], frames.train)
    assert se3.train[:, 9:].abs().max() < 80  # centred CA positions (Å)
    with pytest.raises(ValueError, match="'so3' or 'se3'"):
        protein_frames("so2")


def test_protein_frames_missing_extra(monkeypatch):
    from gaugeflow.data import MissingExtraError, protein_frames

    monkeypatch.setitem(sys.modules, "MDAnalysisTests.datafiles", None)
    with pytest.raises(MissingExtraError, match=r"gaugeflow\[protein\]"):
        protein_frames()


@pytest.mark.parametrize("cls_name", ["PlainFlow", "GaugeFlow", "HigherGaugeFlow"])
def test_flows_train_on_protein_frames_and_beat_haar(frames, cls_name):
    from gaugeflow import models
    from gaugeflow.sampling import log_prob
    from gaugeflow.training import rcfm_loss

    torch.manual_seed(0)
    kw = {} if cls_name == "PlainFlow" else {"k": 3}
    model = getattr(models, cls_name)(M, hidden=32, **kw)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, len(frames.train), (256,), generator=g)
        loss = rcfm_loss(model, M.random_base(256, generator=g), frames.train[idx], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    nll = -float(log_prob(model, frames.test[::8], steps=10).mean())
    assert math.isfinite(nll) and nll < math.log(8 * math.pi ** 2) - 0.1, nll


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cut_locus_screen_is_a_superset_of_the_exact_test_within_twice_the_tolerance(dtype):
    # pairs at angle θ = π − δ, δ from 0.2·tol to 3·tol, random axes and base points; the screen (one
    # trace per pair) must flag every pair the exact test flags, all with δ < 1.9 tol, none with δ > 2.1 tol
    from gaugeflow._numerics import tol
    M, cut_tol, n = SO3(), tol("cut", dtype), 4000
    g = torch.Generator().manual_seed(11)
    delta = cut_tol * torch.linspace(0.2, 3.0, n, dtype=F64)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=F64), dim=-1)
    x = _haar(n, 12)
    y = (x.view(n, 3, 3) @ _matrix((math.pi - delta)[:, None] * axis).view(n, 3, 3)).reshape(n, 9)
    x, y = x.to(dtype), y.to(dtype)
    exact, screen = M.cut_locus_mask(x, y), M.cut_locus_screen(x, y)
    assert bool(exact.any()) and not bool((exact & ~screen).any())
    assert bool(screen[delta < 1.9 * cut_tol].all()) and not bool(screen[delta > 2.1 * cut_tol].any())
    far = _haar(n, 13).to(dtype)  # Haar pairs: the screen agrees with δ < 2 tol computed in float64
    ref = (math.pi - M.dist(x.double(), far.double())) < 2 * cut_tol
    assert torch.equal(M.cut_locus_screen(x, far), ref)
    half = M.cut_locus_screen(x.half(), y.half())  # other dtypes: the exact test itself
    assert torch.equal(half, M.cut_locus_mask(x.half(), y.half()))

"""PremetricPath (RFM's premetric conditional paths): the sphere, where everything has a closed form,
and an icosphere mesh with the biharmonic premetric (issue 20's acceptance lines)."""
from __future__ import annotations

import math

import pytest
import torch

from gaugeflow.manifolds import Sphere
from gaugeflow.training import GeodesicPath, PathSample, PremetricPath, default_path, rcfm_loss

F64 = torch.float64


def _pairs(n: int, seed: int = 0, M=None):
    M = M or Sphere(2)
    g = torch.Generator().manual_seed(seed)
    return M.random_base(n, generator=g, dtype=F64), M.random_base(n, generator=g, dtype=F64), torch.rand(n, generator=g, dtype=F64)


def sphere_biharmonic(x: torch.Tensor, y: torch.Tensor, L: int = 20) -> torch.Tensor:
    """Biharmonic distance of S² truncated at degree L, in closed form: the addition theorem
    ``Σ_m Y_lm(x) Y_lm(y) = (2l+1)/(4π) P_l(x·y)`` gives ``d² = Σ_l (2l+1)/(4π) · 2(1 − P_l(x·y)) / (l(l+1))²``."""
    c = (x * y).sum(-1).clamp(-1, 1)
    p_prev, p, total = torch.ones_like(c), c, torch.zeros_like(c)
    for l in range(1, L + 1):
        total = total + (2 * l + 1) / (4 * math.pi) * 2 * (1 - p) / (l * (l + 1)) ** 2
        p_prev, p = p, ((2 * l + 1) * c * p - l * p_prev) / (l + 1)
    return total.clamp_min(0).sqrt()


def test_exact_dist_reproduces_the_geodesic_path():
    # With d = dist, ∇d = −log_x(x1)/‖log_x(x1)‖ is a unit vector along the great circle and exp follows that
    # circle exactly, so every midpoint step and Newton correction lands on the geodesic: only rounding is
    # left (a few ulps per step, ~30 steps), hence 1e-10 in float64.
    M = Sphere(2)
    x0, x1, t = _pairs(1000)
    t = torch.cat([t[:-2], torch.tensor([0.0, 1.0], dtype=F64)])
    ps = PremetricPath(M, kind="geodesic").sample(x0, x1, t)
    ref = GeodesicPath(M, cut_locus="mask").sample(x0, x1, t)
    ok = ref.valid
    assert ok.sum() > 990 and bool(ps.valid.all())
    assert isinstance(ps, PathSample) and ps.x_t.shape == ref.x_t.shape and ps.u_t.shape == ref.u_t.shape
    assert float((ps.x_t - ref.x_t)[ok].norm(dim=-1).max()) < 1e-10
    assert float((ps.u_t - ref.u_t)[ok].norm(dim=-1).max()) < 1e-7  # t = 1: direction carried from the last step
    assert float((ps.x_t[-1] - x1[-1]).norm()) < 1e-12 and torch.equal(ps.x_t[-2], x0[-2])


def test_monotone_premetric_follows_great_circles_at_its_own_speed():
    # The truncated biharmonic distance of S² is a strictly increasing f(θ) of the angle, so its gradient
    # lines are the great circles and the path sits where f(θ_t) = (1 − t) f(θ0), with speed
    # ‖u_t‖ = f(θ0) / f'(θ_t). The level set is met by Newton corrections (residual ≪ 1e-6).
    M = Sphere(2)
    x0, x1, t = _pairs(500, seed=1)
    ps = PremetricPath(M, distance=sphere_biharmonic).sample(x0, x1, t)
    f0, ft = sphere_biharmonic(x0, x1), sphere_biharmonic(ps.x_t, x1)
    assert float(((ft - (1 - t) * f0).abs() / f0).max()) < 1e-6
    normal = torch.linalg.cross(x0, x1)
    normal = normal / normal.norm(dim=-1, keepdim=True)
    assert float((ps.x_t * normal).sum(-1).abs().max()) < 1e-10  # on the great circle x0 → x1 ...
    between = M.dist(x0, ps.x_t) + M.dist(ps.x_t, x1) - M.dist(x0, x1)
    assert float(between.abs().max()) < 1e-10  # ... between its ends
    theta = M.dist(ps.x_t, x1).clone().requires_grad_(True)
    pole = torch.tensor([0.0, 0.0, 1.0], dtype=F64).expand(len(theta), 3)  # f(θ) = d((sin θ, 0, cos θ), e_z)
    f = sphere_biharmonic(torch.stack([theta.sin(), 0 * theta, theta.cos()], -1), pole)
    (df,) = torch.autograd.grad(f.sum(), theta)
    direction = M.log(ps.x_t, x1)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    expected = (f0 / df)[:, None] * direction
    assert float((ps.u_t - expected).norm(dim=-1).max() / expected.norm(dim=-1).max()) < 1e-6


def test_scheduler_kappa_and_its_derivative():
    M = Sphere(2)
    x0, x1, t = _pairs(200, seed=2)
    kappa = lambda s: (1 - s) ** 2  # noqa: E731 - κ(0) = 1, κ(1) = 0, κ' = −2(1 − s)
    ps = PremetricPath(M, kind="geodesic", kappa=kappa).sample(x0, x1, t)
    ref = GeodesicPath(M, cut_locus="mask").sample(x0, x1, 1 - (1 - t) ** 2)  # same curve, reparametrised
    assert float((ps.x_t - ref.x_t).norm(dim=-1).max()) < 1e-10
    assert float((ps.u_t - 2 * (1 - t)[:, None] * ref.u_t).norm(dim=-1).max()) < 1e-8


def test_zero_scheduler_speed_is_not_degenerate_and_the_trainer_call_reads_nothing_back(no_host_reads):
    M = Sphere(2)
    x0, x1, _ = _pairs(16, seed=6)
    t = torch.zeros(16, dtype=F64)  # κ(t) = 1 − t², κ'(0) = 0: u_0 = 0, a valid pair
    ps = PremetricPath(M, kind="geodesic", kappa=lambda s: 1 - s * s).sample(x0, x1, t)
    assert ps.n_masked == 0 and float((ps.x_t - x0).abs().max()) < 1e-14 and float(ps.u_t.abs().max()) == 0
    path = PremetricPath(M, distance=sphere_biharmonic)
    with no_host_reads():
        ps = path.sample(x0, x1, torch.full((16,), 0.5, dtype=F64), host_checks=False)
    assert int(ps.n_masked) == 0


def test_rcfm_loss_accepts_the_premetric_path_and_trains():
    from gaugeflow.models import PlainFlow

    M = Sphere(2)
    torch.manual_seed(0)
    model = PlainFlow(M, hidden=32).double()
    x0, x1, t = _pairs(256, seed=3)
    x1 = M.projx(x1 + torch.tensor([0.0, 0.0, 3.0], dtype=F64))  # a concentrated target
    a = rcfm_loss(model, x0, x1, t, path=PremetricPath(M, kind="geodesic"))
    b = rcfm_loss(model, x0, x1, t, path=GeodesicPath(M))
    assert abs(float(a.detach()) - float(b.detach())) < 1e-10
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    path = PremetricPath(M, distance=lambda x, y: sphere_biharmonic(x, y, L=4), steps=4)
    x0, x1, t = x0[:64], x1[:64], t[:64]
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = rcfm_loss(model, x0, x1, t, path=path, host_checks=False)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_host_free_sampling_masks_degenerate_pairs_with_finite_values():
    # x0 = −x1 is a critical point of the spectral distance (its maximum): ∇d = 0, no direction to flow in.
    M = Sphere(2)
    x0, x1, t = _pairs(64, seed=4)
    x1[:3] = torch.eye(3, dtype=F64)  # exact antipodes: the surface gradient at x0 is exactly 0
    x0[:3] = -x1[:3]
    path = PremetricPath(M, distance=sphere_biharmonic, degenerate="mask")
    ps = path.sample(x0, x1, t, host_checks=False)
    assert isinstance(ps.n_masked, torch.Tensor) and int(ps.n_masked) >= 3 and not bool(ps.valid[:3].any())
    assert bool(torch.isfinite(ps.x_t).all() and torch.isfinite(ps.u_t).all())
    ps = PremetricPath(M, distance=sphere_biharmonic).sample(x0, x1, t, generator=torch.Generator().manual_seed(0))
    assert ps.n_cut >= 3 and ps.n_resampled >= 3 and ps.n_masked == 0 and bool(ps.valid.all())
    assert not torch.equal(ps.x0[:3], x0[:3]) and torch.equal(ps.x0[3:], x0[3:])
    with pytest.raises(ValueError, match="failed to reach the level set"):
        PremetricPath(M, distance=sphere_biharmonic, degenerate="raise").sample(x0, x1, t)


def test_default_path_reads_the_capability_flag():
    M = Sphere(2)
    assert isinstance(default_path(M), GeodesicPath)
    assert isinstance(default_path(M, "geodesic"), GeodesicPath)

    class NoLog(Sphere):
        capabilities = frozenset({"dist"})

        def spectral_distance(self, x, y, kind="biharmonic"):
            return sphere_biharmonic(x, y)

    path = default_path(NoLog(2))
    assert isinstance(path, PremetricPath) and path.kind == "biharmonic"
    x0, x1, t = _pairs(32, seed=5)
    ps = path.sample(x0, x1, t)
    assert float(((sphere_biharmonic(ps.x_t, x1) - (1 - t) * sphere_biharmonic(x0, x1)).abs()).max()) < 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "biharmonic"}, "has no spectral distance"),
    ({"kind": "nope"}, "kind must be one of"),
    ({"kind": "geodesic", "steps": 0}, "steps must be an integer >= 1"),
    ({"kind": "geodesic", "degenerate": "skip"}, "degenerate must be one of"),
    ({"kind": "geodesic", "fail_tol": -1.0}, "fail_tol must be a positive number"),
])
def test_bad_settings_are_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PremetricPath(Sphere(2), **kwargs)


def test_bad_inputs_are_one_line_errors():
    M = Sphere(2)
    path = PremetricPath(M, kind="geodesic")
    x0, x1, t = _pairs(4)
    with pytest.raises(ValueError, match="must both have shape"):
        path.sample(x0, x1[:3], t)
    with pytest.raises(ValueError, match=r"times must lie in \[0, 1\]"):
        path.sample(x0, x1, t + 1)
    with pytest.raises(TypeError, match="share a dtype"):
        path.sample(x0, x1.float(), t)
    with pytest.raises(TypeError, match="distance must be a callable"):
        PremetricPath(M, distance=3)


# ---------------------------------------------------------------------- an icosphere mesh (issue 20's acceptance)
@pytest.fixture(scope="module")
def icosphere():
    from gaugeflow.manifolds import Mesh

    M = Mesh.icosphere(5)  # 20 480 faces
    assert len(M.faces) >= 10_000
    return M


@pytest.fixture(scope="module")
def icosphere_paths(icosphere):
    """1 000 random pairs at random times and the same pairs at t = 1 (biharmonic premetric, defaults)."""
    M = icosphere
    g = torch.Generator().manual_seed(0)
    x0, x1 = M.random_base(1000, generator=g, dtype=F64), M.random_base(1000, generator=g, dtype=F64)
    t = torch.cat([torch.rand(1000, generator=g, dtype=F64), torch.ones(1000, dtype=F64)])
    path = PremetricPath(M, degenerate="mask")
    x0, x1 = torch.cat([x0, x0]), torch.cat([x1, x1])
    return path, x0, x1, t, path.sample(x0, x1, t)


def test_mesh_paths_end_at_x1(icosphere_paths):
    path, x0, x1, t, ps = icosphere_paths
    end = (ps.x_t[1000:] - x1[1000:]).norm(dim=-1)
    assert float((end <= 1e-3).double().mean()) >= 0.98  # measured: every pair, worst 2e-6
    assert bool(torch.isfinite(ps.u_t).all()) and float(ps.u_t.norm(dim=-1).min()) > 0  # finite, non-zero at t = 1


def test_mesh_paths_keep_the_premetric_level_and_stay_on_the_surface(icosphere, icosphere_paths):
    M = icosphere
    path, x0, x1, t, ps = icosphere_paths
    d0 = M.spectral_distance(x0, x1)
    level = (M.spectral_distance(ps.x_t, x1) - (1 - t) * d0).abs() / d0
    assert float((level <= 1e-3).double().mean()) >= 0.98  # measured: every pair, worst 3e-8
    assert float((M.projx(ps.x_t) - ps.x_t).norm(dim=-1).max()) <= 1e-6
    for kappa_t in (0.25, 0.5, 0.75):  # intermediate points of whole paths: on the surface too
        xs = path.sample(x0[:200], x1[:200], torch.full((200,), kappa_t, dtype=F64)).x_t
        assert float((M.projx(xs) - xs).norm(dim=-1).max()) <= 1e-6


def test_mesh_velocity_is_the_rfm_field(icosphere, icosphere_paths):
    # u_t = κ'(t) d0 ∇d/‖∇d‖² (module docstring): tangent to the face, and d/ds d(x_t + s u_t, x1) = κ' d0 = −d0.
    M = icosphere
    path, x0, x1, t, ps = icosphere_paths
    x, u, x1s, d0 = ps.x_t[:200], ps.u_t[:200], x1[:200], M.spectral_distance(x0[:200], x1[:200])
    assert float((M.proju(x, u) - u).norm(dim=-1).max()) < 1e-12
    eps = 1e-6
    rate = (M.spectral_distance(M.exp(x, eps * u), x1s) - M.spectral_distance(M.exp(x, -eps * u), x1s)) / (2 * eps)
    assert float(((rate + d0) / d0).abs().median()) < 1e-3


def test_mesh_paths_follow_great_circles_on_the_icosphere(icosphere_paths):
    # The icosphere approximates S², where the biharmonic distance is a function of the angle (see
    # sphere_biharmonic above): gradient lines are great circles up to the mesh's resolution
    # (edge ≈ 0.03) and the truncation to 128 eigenpairs. Measured: median distance 2e-3, 90 % below 0.03.
    path, x0, x1, t, ps = icosphere_paths
    normal = torch.linalg.cross(x0[:1000], x1[:1000])
    off = (ps.x_t[:1000] * normal / normal.norm(dim=-1, keepdim=True)).sum(-1).abs()
    assert float(off.median()) < 5e-3 and float(off.quantile(0.9)) < 0.05

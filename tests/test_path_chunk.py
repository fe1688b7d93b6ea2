"""Paths of several steps built in one call (TrainConfig.path_chunk, gaugeflow.training.prefetch).

What must hold for any chunk size K: the same random stream and pairs as K = 1, each step's path and
loss those it gets alone (to rounding), cut pairs replaced from their own step, exact resume mid-chunk.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from gaugeflow.data import wrapped_mixture
from gaugeflow.manifolds import SO3, FlatTorus, Hyperbolic, Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.training import (CheckpointError, GeodesicPath, PremetricPath, TrainConfig, Trainer, rcfm_loss)
from gaugeflow.training.prefetch import build_paths, chunk_size, step_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

M = Sphere(2)
DATA = wrapped_mixture(M, n_train=200, n_val=40, n_test=40, seed=3)
SMALL = dict(batch_size=16, progress=False, val_size=0, hidden=8, steps=10)


class _Recording(Trainer):
    """Records every draw (the pairs a step trains on) in order."""

    def draw(self):
        out = super().draw()
        self.__dict__.setdefault("draws", []).append(out)
        self.__dict__.setdefault("drawn_at", []).append(self.step)  # the step whose batch this is
        return out


def _trainer(cls=Trainer, **kw):
    torch.manual_seed(0)
    return cls(PlainFlow(M, hidden=8), DATA, TrainConfig(**{**SMALL, **kw}))


def _params(tr):
    return torch.cat([p.detach().flatten() for p in tr.model.parameters()])


def test_any_chunk_size_trains_on_the_same_stream_and_pairs_to_rounding():
    ref = _trainer(_Recording, path_chunk=1)
    hist = ref.fit()
    for k in (3, 8):
        got = _trainer(_Recording, path_chunk=k)
        h = got.fit()
        assert len(got.draws) == k * -(-10 // k)  # whole chunks: the spare draws change nothing before them
        assert got.drawn_at == list(range(len(got.draws))) and ref.drawn_at == list(range(10))
        assert all(torch.equal(a, b) for da, db in zip(ref.draws, got.draws) for a, b in zip(da, db))
        torch.testing.assert_close(torch.tensor(h.loss), torch.tensor(hist.loss), rtol=1e-5, atol=0)
        torch.testing.assert_close(_params(got), _params(ref), rtol=1e-4, atol=1e-6)
        assert h.loss != [] and got.stream_state().equal(ref.generator.get_state())  # 10 steps drawn, not more


def _cut_end(M, x0):
    """An end point at the cut locus of ``x0`` (antipode, half-way round the torus, a half-turn)."""
    if isinstance(M, Sphere):
        return -x0
    if isinstance(M, SO3):
        return (x0.view(-1, 3, 3) * torch.tensor([-1.0, -1.0, 1.0])).reshape(x0.shape)  # R diag(−1, −1, 1)
    return x0 + torch.pi


@pytest.mark.parametrize("M", [Sphere(2), FlatTorus(2), Hyperbolic(2), SO3()], ids=str)
def test_each_step_gets_the_path_and_loss_it_gets_alone(M):
    K, b = 4, 64
    g = torch.Generator().manual_seed(5)
    x0, x1 = M.random_base(K * b, generator=g), M.random_base(K * b, generator=g)
    t = torch.rand(K * b, generator=g)
    if M.injectivity_radius < float("inf"):
        x1[2 * b] = _cut_end(M, x0[2 * b])  # at the cut locus
    path = GeodesicPath(M)
    steps = build_paths(path, x0, x1, t, K)
    torch.manual_seed(1)
    model = PlainFlow(M, hidden=8)
    for k, step in enumerate(steps):
        rows = slice(k * b, (k + 1) * b)
        alone = path.sample(x0[rows], x1[rows], t[rows], host_checks=False)
        torch.testing.assert_close(step.x_t, alone.x_t, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(step.u_t, alone.u_t, rtol=1e-6, atol=1e-6)
        expected = rcfm_loss(model, x0[rows], x1[rows], t[rows], path=path, host_checks=False)
        torch.testing.assert_close(step_loss(model, M, step), expected, rtol=1e-6, atol=0)
        one = build_paths(path, x0[rows], x1[rows], t[rows], 1)[0]  # path_chunk=1: the trainer's former step
        assert torch.equal(step_loss(model, M, one), expected)
    if M.injectivity_radius < float("inf"):  # the cut pair took the start point of its own step's last pair
        ps = path.sample(x0, x1, t, host_checks=False, batches=K)
        assert int(ps.n_cut) >= 1 and torch.equal(ps.x0[2 * b], x0[3 * b - 1])
        assert not torch.equal(ps.x0[2 * b], x0[2 * b - 1])  # not the previous step's (what a plain roll gives)


@pytest.mark.parametrize("M", [Sphere(2), SO3()], ids=str)
@pytest.mark.parametrize("batches", [1, 3])
def test_the_device_round_is_a_roll_within_each_batch(M, batches):
    """The on-device round gives each cut pair the start point of the previous pair of its own batch
    (the first pair: the batch's last), bit for bit what a roll per batch and a row mask give."""
    b = 6
    g = torch.Generator().manual_seed(8)
    x0, x1 = M.random_base(batches * b, generator=g), M.random_base(batches * b, generator=g)
    hit = [0, 4, b * (batches - 1) + 1]
    x1[hit] = _cut_end(M, x0[hit])
    x0_new, n_cut, n_resampled = GeodesicPath(M)._replace_cut_on_device(x0, x1, batches)
    cut = M.cut_locus_mask(x0, x1)
    rolled = x0.unflatten(0, (batches, b)).roll(1, 1).flatten(0, 1)
    assert int(n_cut) == int(n_resampled) == len(set(hit)) == int(cut.sum())
    assert torch.equal(x0_new, torch.where(cut.unsqueeze(-1), rolled, x0))
    assert torch.equal(x0_new[0], x0[b - 1]) and not bool(M.cut_locus_mask(x0_new, x1)[hit].any())


def test_masked_pairs_count_per_step_and_carry_no_gradient():
    K, b = 3, 8
    g = torch.Generator().manual_seed(2)
    x0 = M.random_base(K * b, generator=g)
    x1 = M.random_base(K * b, generator=g)
    x1[[1, 2, 9]] = -x0[[1, 2, 9]]  # two cut pairs in step 0, one in step 1, none in step 2
    t = torch.rand(K * b, generator=g)
    steps = build_paths(GeodesicPath(M, cut_locus="mask"), x0, x1, t, K)
    assert [int(s.n_used) for s in steps] == [b - 2, b - 1, b]
    torch.manual_seed(0)
    model = PlainFlow(M, hidden=8)
    for k, step in enumerate(steps):
        rows = slice(k * b, (k + 1) * b)
        ref = rcfm_loss(model, x0[rows], x1[rows], t[rows], path=GeodesicPath(M, cut_locus="mask"))  # checked route
        torch.testing.assert_close(step_loss(model, M, step), ref, rtol=1e-6, atol=0)
    x = steps[0].x_t.clone().requires_grad_(True)
    step = dataclasses.replace(steps[0], x_t=x)
    step_loss(lambda xx, tt: model(xx, tt), M, step).backward()
    assert torch.equal(x.grad[[1, 2]], torch.zeros(2, 3)) and bool(x.grad[0].abs().sum() > 0)


@pytest.mark.parametrize("at", [3, 4])  # mid-chunk and at a chunk boundary
def test_resume_mid_chunk_is_the_uninterrupted_run_bit_for_bit(tmp_path, at):
    ref = _trainer(path_chunk=4)
    ref_hist = ref.fit()
    part = _trainer(path_chunk=4)
    for _ in range(at):
        part.train_step()
    assert part._paths.pending == (4 - at % 4) % 4
    part.save(tmp_path / "c.safetensors")
    resumed = Trainer(PlainFlow(M, hidden=8), DATA, TrainConfig(**SMALL, path_chunk=4), resume=tmp_path / "c.safetensors")
    assert resumed.fit().loss == ref_hist.loss
    assert torch.equal(_params(resumed), _params(ref))


def test_resume_refuses_another_chunk_size(tmp_path):
    part = _trainer(path_chunk=4)
    part.train_step()
    part.save(tmp_path / "c.safetensors")
    with pytest.raises(CheckpointError, match=r"path_chunk=4 in checkpoint vs 2"):
        Trainer(PlainFlow(M, hidden=8), DATA, TrainConfig(**SMALL, path_chunk=2), resume=tmp_path / "c.safetensors")


def test_chunk_setting_and_batches_are_checked():
    with pytest.raises(ValueError, match=r"path_chunk must be >= 1, got 0"):
        TrainConfig(path_chunk=0)
    with pytest.raises(TypeError, match=r"path_chunk must be an integer"):
        TrainConfig(path_chunk=2.0)
    x = M.random_base(6)
    with pytest.raises(ValueError, match=r"batches must be a positive integer dividing the 6 pairs, got 4"):
        GeodesicPath(M).sample(x, x, torch.rand(6), batches=4)
    assert chunk_size(GeodesicPath(M), 8) == 8 and chunk_size(PremetricPath(M, kind="geodesic"), 8) == 1


class _StepByStep(Trainer):
    """Pairs every step on its own (``draw()`` per step): the route of a chunk before chunked OT pairing."""

    pairs_in_chunks = False


@pytest.mark.parametrize("ot_batch", [None, 4])
def test_a_chunk_paired_at_once_trains_bit_for_bit_like_step_by_step(ot_batch):
    """The exact OT route pairs a chunk's batches in one call (blocks never span two steps): the same pairs,
    hence the same run, bit for bit, as pairing each step alone; the stream ends in the same state."""
    kw = dict(coupling="ot", ot_batch=ot_batch, path_chunk=4, steps=10)
    ours, ref = _trainer(_Recording, **kw), _trainer(_StepByStep, **kw)
    assert ours.pairs_in_chunks and not ref.pairs_in_chunks
    ref.draws = []
    ref.draw = lambda: ref.draws.append(Trainer.draw(ref)) or ref.draws[-1]
    h_ours, h_ref = ours.fit(), ref.fit()
    assert not hasattr(ours, "draws") and len(ref.draws) == 12  # ours never called draw(): one pairing per chunk
    assert h_ours.loss == h_ref.loss
    assert torch.equal(_params(ours), _params(ref))
    assert ours.stream_state().equal(ref.stream_state())
    x0s, x1s, ts = zip(*ref.draws)  # and pair() over several batches is pair() over each
    again = _trainer(**kw)
    assert all(torch.equal(a, b) for got, want in zip(again.pair([again.draw_unpaired() for _ in range(3)]),
                                                       zip(x0s[:3], x1s[:3], ts[:3])) for a, b in zip(got, want))


def test_the_sinkhorn_route_pairs_one_step_at_a_time():
    tr = _trainer(coupling="ot", ot_batch=4, ot_exact_max=2)  # blocks of 4 > 2: Sinkhorn, draws from the stream
    assert not tr.pairs_in_chunks
    with pytest.raises(ValueError, match="one batch at a time"):
        tr.pair([tr.draw_unpaired(), tr.draw_unpaired()])

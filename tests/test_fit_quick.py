"""A short RCFM fit beats the uniform baseline by at least 1 nat (issue 4, acceptance on training).

One fit per manifold and model (600 Adam steps, batch 256, width 32; ~5-15 s each on one core),
on ``wrapped_mixture`` with 4 components; test NLL by the exact likelihood (RK4, 20 steps).
"""
import math
import time

import pytest
import torch

from gaugeflow.data import wrapped_mixture
from gaugeflow.manifolds import FlatTorus, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow
from gaugeflow.sampling import log_prob, sample
from gaugeflow.training import rcfm_loss

BASELINES = {"sphere": (Sphere(2), math.log(4 * math.pi)), "torus": (FlatTorus(2), 2 * math.log(2 * math.pi))}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small-batch training is dispatch-bound; extra intra-op threads only add contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _fit(model, data, steps=600, batch=256, lr=3e-3, seed=0):
    """A minimal Adam loop on the RCFM loss (the library's trainer lives in ``training.trainer``)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    M = model.manifold
    for _ in range(steps):
        idx = torch.randint(0, len(data.train), (batch,), generator=gen)
        loss = rcfm_loss(model, M.random_base(batch, generator=gen), data.train[idx], generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


@pytest.mark.slow
@pytest.mark.parametrize("cls", [PlainFlow, GaugeFlow, HigherGaugeFlow])
@pytest.mark.parametrize("where", list(BASELINES))
def test_short_fit_beats_uniform_by_one_nat(where, cls):
    M, uniform_nll = BASELINES[where]
    data = wrapped_mixture(M, n_components=4, n_train=4000, n_val=100, n_test=500, scale=0.2, seed=0)
    torch.manual_seed(0)
    model = cls(M, hidden=32)
    cpu0 = time.process_time()
    with torch.no_grad():
        before = -float(log_prob(model, data.test, steps=20).mean())
    loss = _fit(model, data)
    nll = -float(log_prob(model, data.test, steps=20).mean())
    cpu = time.process_time() - cpu0
    print(f"{M} {cls.__name__}: test NLL {before:.3f} -> {nll:.3f} (uniform {uniform_nll:.3f}, "
          f"improvement {uniform_nll - nll:.3f} nats), final loss {loss:.3f}, {cpu:.1f} CPU s")
    assert uniform_nll - nll >= 1.0
    assert cpu < 120.0
    samples = sample(model, M.random_base(256, generator=torch.Generator().manual_seed(1)), steps=20)
    M.check_point(samples)

"""Shared test configuration (kept small): geomstats backend, hypothesis profile, torch threads."""
import contextlib
import os

os.environ.setdefault("GEOMSTATS_BACKEND", "numpy")  # must precede the first geomstats import (process-wide)

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# "ci" (default): reproducible examples (derandomize), no deadline (shared 2-core CI machines),
# no example database. "dev": random exploration; select with GAUGEFLOW_HYPOTHESIS_PROFILE=dev.
settings.register_profile("ci", derandomize=True, deadline=None, database=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("GAUGEFLOW_HYPOTHESIS_PROFILE", "ci"))

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: avoid thread oversubscription
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Single-threaded torch for a test module (small models; subprocess-heavy tests), restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@contextlib.contextmanager
def _no_host_reads():
    """Inside, every tensor → Python conversion raises: the code under test must stay on the device."""
    def forbidden(self, *args, **kwargs):
        raise AssertionError("device→host read in a path that promises none")

    with pytest.MonkeyPatch.context() as mp:
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
            mp.setattr(torch.Tensor, name, forbidden)
        yield


@pytest.fixture
def no_host_reads():
    """``with no_host_reads(): ...`` fails on any ``.item()``/``float()``/``bool()``/… of a tensor (a host sync on GPUs)."""
    return _no_host_reads

"""The fault suite: every case of the table in ``registry.py`` (≥ 80), and docs/reliability.md kept in sync.

Run alone with ``pytest tests/faults -q``; ``-m "not slow"`` skips the long SIGKILL study.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from . import make_report
from .registry import Ctx, load_all

CASES = load_all()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def run_template(tmp_path_factory):
    """A small trained run (sphere, plain, 3 steps), made once; every case works on its own copy."""
    made: list[Path] = []

    def get() -> Path:
        if not made:
            from gaugeflow.cli import main
            out = tmp_path_factory.mktemp("template") / "run"
            assert main(["train", "--model", "plain", "--hidden", "8", "--batch-size", "16", "--n-data", "120",
                         "--val-size", "0", "--no-progress", "--steps", "3", "--out", str(out)]) == 0
            (out / ".gaugeflow.lock").unlink()
            made.append(out)
        return made[0]
    yield get
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


@pytest.mark.parametrize("case", [pytest.param(c, marks=[pytest.mark.slow] if c.slow else [], id=c.id)
                                  for c in CASES])
def test_fault(case, tmp_path, monkeypatch, run_template):
    case.run(Ctx(tmp_path, run_template, monkeypatch))


def test_the_suite_covers_at_least_80_cases_in_every_group():
    assert len(CASES) >= 80, len(CASES)
    assert {c.group for c in CASES} == set(make_report.GROUPS)


def test_reliability_page_is_generated_from_the_suite():
    page = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
    assert page.read_text() == make_report.render(CASES), "run: python tests/faults/make_report.py"

"""Figures: bit-for-bit reproducible PNGs (viz and docs/make_figures.py), the colour scale, ``plot --log/--linear``."""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gaugeflow.cli import main
from gaugeflow.manifolds import FlatTorus, Sphere
from gaugeflow.models import GaugeFlow
from gaugeflow.viz import model_density, sphere_density_figure, sphere_grid, torus_figure, torus_grid

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _digest(path: Path) -> str:
    data = path.read_bytes()
    assert data[:8] == PNG
    return hashlib.sha256(data).hexdigest()


def _make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sphere_map(path: Path, scale: str = "auto", dens_fn=None) -> Path:
    """A small seeded model's density on a 10 x 20 grid, drawn with data and samples; fresh model each call."""
    torch.manual_seed(0)
    model = GaugeFlow(Sphere(2), hidden=8).double()
    pts, lon, lat = sphere_grid(10, 20)
    dens = model_density(model, pts, steps=2).reshape(10, 20) if dens_fn is None else dens_fn(pts).reshape(10, 20)
    pts_data = Sphere(2).random_base(200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return sphere_density_figure(dens, lon, lat, path, pts_data[:100], "test", pts_data[100:], scale)


def test_sphere_density_figure_is_the_same_bytes_twice(tmp_path):
    a, b = _sphere_map(tmp_path / "a.png"), _sphere_map(tmp_path / "b.png")
    assert _digest(a) == _digest(b)
    assert b"Software" not in a.read_bytes()  # no matplotlib version stamp in the PNG's text chunks


def test_torus_figure_is_the_same_bytes_twice(tmp_path):
    pts, centres = torus_grid(12)
    dens = torch.exp(3 * torch.cos(pts[:, 0]) + 2 * torch.cos(pts[:, 1] - 1)).reshape(12, 12)
    dens = dens / (dens.mean() * (2 * math.pi) ** 2)
    xs = FlatTorus(2).random_base(50, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    paths = [torus_figure(dens, centres, tmp_path / f"{i}.png", xs, xs, "t") for i in range(2)]
    assert _digest(paths[0]) == _digest(paths[1])


def test_make_figures_function_is_the_same_bytes_in_another_process(tmp_path):
    """A docs/make_figures.py figure drawn here and in a fresh interpreter (other hash seed) is identical."""
    _make_figures().fig_cut_locus(tmp_path)
    code = ("import importlib.util, sys; from pathlib import Path; "
            "s = importlib.util.spec_from_file_location('mf', sys.argv[1]); m = importlib.util.module_from_spec(s); "
            "s.loader.exec_module(m); m.fig_cut_locus(Path(sys.argv[2]))")
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run([sys.executable, "-c", code, str(ROOT / "docs" / "make_figures.py"), str(other)], check=True,
                   env={**os.environ, "PYTHONHASHSEED": "123"}, timeout=120)
    assert _digest(tmp_path / "cut_locus.png") == _digest(other / "cut_locus.png")


def test_auto_scale_is_log_where_the_density_spans_decades_else_linear(tmp_path):
    peaked = lambda x: torch.exp(12 * x[:, 2])  # noqa: E731  max/min = e^24: spans decades
    flat = lambda x: 1 + 0.5 * x[:, 2]  # noqa: E731  max/min = 3
    for name, fn, expected in (("peaked", peaked, "log"), ("flat", flat, "linear")):
        auto = _digest(_sphere_map(tmp_path / f"{name}-auto.png", "auto", fn))
        log = _digest(_sphere_map(tmp_path / f"{name}-log.png", "log", fn))
        linear = _digest(_sphere_map(tmp_path / f"{name}-linear.png", "linear", fn))
        assert log != linear
        assert auto == {"log": log, "linear": linear}[expected], name


def test_bad_scale_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="scale must be 'auto', 'log' or 'linear', got 'loud'"):
        _sphere_map(tmp_path / "x.png", "loud")


def test_plot_log_and_linear_flags(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--manifold", "sphere", "--model", "gauge", "--steps", "3", "--val-size", "0", "--hidden",
                 "8", "--batch-size", "16", "--n-data", "200", "--no-progress", "--out", str(run)]) == 0
    common = ["plot", str(run), "--grid", "6", "--steps", "2", "--n-samples", "50"]
    assert main([*common, "--log", "--out", str(tmp_path / "log")]) == 0
    assert main([*common, "--linear", "--out", str(tmp_path / "linear")]) == 0
    assert _digest(tmp_path / "log" / "density.png") != _digest(tmp_path / "linear" / "density.png")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--log", "--linear"])
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err

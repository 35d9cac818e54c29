from __future__ import annotations

from pathlib import Path

import pytest

from edge_opt.measure.energy import RaplReader, energy_proxy_j, power_source, rapl_status


def fake_rapl(root: Path, value: int, max_range: int = 1000) -> Path:
    domain = root / "intel-rapl:0"
    domain.mkdir(parents=True, exist_ok=True)
    (domain / "energy_uj").write_text(str(value))
    (domain / "max_energy_range_uj").write_text(str(max_range))
    (root / "intel-rapl:0:0").mkdir(exist_ok=True)  # a sub-domain: not counted twice
    return domain


def test_proxy_and_power_source() -> None:
    assert energy_proxy_j(2.0, 5.0) == pytest.approx(0.01)
    assert power_source(3.5).watts == 3.5
    assert "assumed" in power_source(3.5).source


def test_rapl_unavailable_says_why(tmp_path: Path) -> None:
    assert rapl_status(tmp_path / "none").startswith("unavailable: ")
    reader = RaplReader(tmp_path / "none")
    assert not reader.available
    assert reader() is None


def test_rapl_counts_and_handles_wrap_around(tmp_path: Path) -> None:
    domain = fake_rapl(tmp_path, 900)
    assert rapl_status(tmp_path) == "available (1 package domain(s))"
    reader = RaplReader(tmp_path)
    (domain / "energy_uj").write_text("950")
    assert reader() == pytest.approx(50e-6)
    (domain / "energy_uj").write_text("30")  # wrapped at 1000
    assert reader() == pytest.approx(130e-6)

"""How a registry takes plugins: one line per plugin left out, never a traceback, never a
winner chosen by the order entry points sort in."""

from __future__ import annotations

import pytest

from edge_opt.analysis.device_profiles import Figure, HardwareProfile
from edge_opt.infra import plugins
from edge_opt.infra.plugins import PluginEntry
from edge_opt.infra.registry import Registry
from edge_opt.runtimes.registry import RuntimeSpec


def _registry(monkeypatch, entries, problems=()) -> Registry:
    monkeypatch.setattr(plugins, "load_group", lambda group: (list(entries), list(problems)))
    registry: Registry = Registry(
        "runtime", KeyError, group="edge_opt.runtimes", entry_type=RuntimeSpec
    )
    registry.add(RuntimeSpec("eager", "m:f"))
    return registry


def test_two_plugins_claiming_one_name_are_both_left_out(monkeypatch) -> None:
    a = PluginEntry(RuntimeSpec("vendor", "a:build"), "plugin 'a' (entry point 'vendor = a:SPEC')")
    b = PluginEntry(RuntimeSpec("vendor", "b:build"), "plugin 'b' (entry point 'x = b:SPEC')")
    registry = _registry(monkeypatch, [a, b])
    assert registry.names() == ["eager"]
    [problem] = registry.problems()
    assert problem == (
        "runtime 'vendor' is registered by plugin 'a' (entry point 'vendor = a:SPEC') and "
        "plugin 'b' (entry point 'x = b:SPEC'): all are left out (uninstall all but one, or "
        "rename)"
    )


def test_a_plugin_calling_sys_exit_is_one_line(monkeypatch, tmp_path) -> None:
    module = tmp_path / "exiting_plugin.py"
    module.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    class EntryPoint:
        name, value, dist = "x", "exiting_plugin:SPEC", None

        def load(self):
            import exiting_plugin  # noqa: F401

    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: [EntryPoint()])
    entries, problems = plugins.load_group("edge_opt.runtimes")
    assert entries == []
    assert problems == [
        "plugin 'unknown distribution' (entry point 'x = exiting_plugin:SPEC') failed to load: "
        "it called sys.exit(3) while being imported"
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RuntimeSpec("Bad Name", "m:f"), "runtime name 'Bad Name'"),
        (lambda: RuntimeSpec("ok", "m:f", marker="ZZ"), "marker 'ZZ' is not one of"),
        (lambda: RuntimeSpec("ok", "m:f", svg_shape="hexagon"), "svg_shape 'hexagon'"),
    ],
)
def test_a_runtime_spec_is_checked_when_made(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_device_profile_needs_a_plain_name_and_an_fp32_rate() -> None:
    figure = Figure(1.0, "assumed")
    common = {
        "description": "d",
        "memory_bandwidth_gbps": figure,
        "l1d_kib": figure,
        "l2_kib": figure,
        "l3_kib": figure,
        "active_power_watts": figure,
        "idle_power_watts": figure,
    }
    with pytest.raises(ValueError, match="device name 'Bad Name/../x'"):
        HardwareProfile(name="Bad Name/../x", peak_gmacs={"fp32": figure}, **common)
    with pytest.raises(ValueError, match="peak_gmacs needs an fp32 figure"):
        HardwareProfile(name="board", peak_gmacs={"int8": figure}, **common)

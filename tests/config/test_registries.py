"""The config accepts exactly the registered names: every runtime, precision, device, dataset
format, executor and sampler its registry holds, and nothing else; a wrong name's error lists
the registered ones."""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any

import pytest

from edge_opt.config.loading import build_config
from edge_opt.config.types import allowed_text, default_engine, registry
from edge_opt.errors import ConfigError

# kind -> (config field in errors, how a config names one value of it)
FIELDS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "runtime": ("runtimes.0", lambda n: {"runtimes": [n]}),
    "precision": ("precisions.0", lambda n: {"precisions": [n]}),
    "device": ("device", lambda n: {"device": n}),
    "dataset format": ("dataset.format", lambda n: {"dataset": {"format": n, "path": "data"}}),
    "executor": ("executor.kind", lambda n: {"executor": {"kind": n}}),
    "sampler": ("search.sampler", lambda n: {"search": {"strategy": "optuna", "sampler": n}}),
}


# Besides the registered names, a key may take a word of its own.
EXTRA = {"device": ["auto"]}


def _accepted(kind: str) -> list[str]:
    names = [*EXTRA.get(kind, []), *registry(kind).names()]
    if kind == "dataset format":  # `factory` is written as dataset.factory, not as a format
        names = [n for n in registry(kind).names() if registry(kind).get(n).takes_path]
    return names


@pytest.mark.parametrize("kind", FIELDS)
def test_every_registered_name_is_accepted(kind: str) -> None:
    _, config = FIELDS[kind]
    for name in _accepted(kind):
        build_config(config(name))


@pytest.mark.parametrize("kind", FIELDS)
def test_any_other_name_is_refused_with_the_registered_ones(kind: str) -> None:
    field, config = FIELDS[kind]
    with pytest.raises(ConfigError) as caught:
        build_config(config("not-registered"))
    message = str(caught.value)
    assert f"{field}: Input should be {allowed_text(_accepted(kind))}" in message
    assert "got 'not-registered'" in message


def test_device_auto_is_this_machine() -> None:
    from edge_opt.config.types import detected_device
    from edge_opt.infra.cpu import this_cpu

    expected = detected_device(this_cpu().board) or "host"
    assert build_config({"device": "auto"}).device == expected
    assert detected_device("Raspberry Pi 4 Model B Rev 1.4") == "raspberry-pi-4"
    assert detected_device("NVIDIA Jetson Nano Developer Kit") == "jetson-nano"
    assert detected_device("Raspberry Pi 5 Model B Rev 1.0") is None  # no profile: host
    assert detected_device(None) is None


def test_int8_engines_are_the_registered_ones_that_run_on_this_cpu() -> None:
    machine = platform.machine()
    engines = registry("engine")
    assert build_config({}).quantization_backend == default_engine(machine)
    for name in engines.names():
        if machine in engines.get(name).machines:
            assert build_config({"quantization_backend": name}).quantization_backend == name
        else:
            with pytest.raises(ConfigError, match="quantization_backend"):
                build_config({"quantization_backend": name})
    with pytest.raises(ConfigError, match=allowed_text(["auto", *engines.names()])):
        build_config({"quantization_backend": "not-registered"})

"""Getting a run ready: the configured model, data/model checks, the timing protocol, seeds,
and profiling a model on its own (``edge-opt profile``)."""

from __future__ import annotations

import random

import numpy as np
import torch

from edge_opt.analysis.devices import get_device_profile
from edge_opt.analysis.profiling import HardwareProfileTable, build_hardware_profile_table
from edge_opt.config.schema import ExperimentConfig
from edge_opt.data.formats import load_dataset
from edge_opt.data.splits import DataSplits, split_dataset
from edge_opt.errors import EdgeOptError, ModelError
from edge_opt.infra.cpu import armv80_problem
from edge_opt.measure.harness import HarnessSettings
from edge_opt.models.layers import estimate_layerwise_stats
from edge_opt.models.zoo import BuiltModel, build_configured_model
from edge_opt.orchestrate.executors.base import auto_cluster_problem


def check_data_fits_model(splits: DataSplits, built: BuiltModel) -> None:
    """The dataset's images must have the model's input shape, and its classes must match.

    Raises:
        ModelError: saying what does not match and what to change.
    """
    if tuple(splits.input_shape) != tuple(built.input_shape):
        raise ModelError(
            f"model {built.label!r} expects inputs of shape {list(built.input_shape)} (C, H, W) "
            f"but dataset {splits.name!r} has images of shape {list(splits.input_shape)}; use a "
            "model built for that shape (e.g. model.kwargs in_channels and model.input_shape) "
            "or a dataset with matching images"
        )
    with torch.inference_mode():
        classes = int(built.model.eval()(splits.train.images(slice(0, 1))).shape[-1])
    if classes != splits.num_classes:
        raise ModelError(
            f"model {built.label!r} outputs {classes} classes but dataset {splits.name!r} has "
            f"{splits.num_classes}; set model.num_classes: {splits.num_classes}"
        )


def preflight(cfg: ExperimentConfig) -> list[str]:
    """Problems a run would hit before any work: a torch this CPU cannot run, bad model,
    dataset missing or mismatched."""
    problems = []
    cpu_problem = armv80_problem(max(cfg.train_threads, cfg.benchmark_threads))
    if cpu_problem is not None:
        return [cpu_problem]
    cluster_problem = auto_cluster_problem(cfg.executor)
    if cluster_problem is not None:
        problems.append(cluster_problem)
    try:
        built = build_configured_model(cfg)
    except EdgeOptError as exc:
        problems.append(str(exc))
        built = None
    try:
        shape = built.input_shape if built is not None else (1, 28, 28)
        raw = load_dataset(cfg.dataset, shape, cfg.data_dir)
    except EdgeOptError as exc:
        return [*problems, str(exc)]
    images = tuple(raw.train_images.shape[1:])
    if built is not None and images != tuple(built.input_shape):
        problems.append(
            f"model {built.label!r} expects inputs of shape {list(built.input_shape)} but "
            f"dataset {raw.name!r} has images of shape {list(images)}"
        )
        built = None  # its classes cannot be checked on images it does not take
    # The same splits and checks a run makes before training: subsets against the images
    # there are, the model's classes against the dataset's.
    try:
        splits = split_dataset(raw, cfg.train_subset, cfg.val_subset, cfg.test_subset, cfg.seed)
        if built is not None:
            check_data_fits_model(splits, built)
    except EdgeOptError as exc:
        problems.append(str(exc))
    return problems


def harness_settings(cfg: ExperimentConfig) -> HarnessSettings:
    """The timing protocol the config asks for."""
    return HarnessSettings(
        threads=cfg.benchmark_threads,
        warmup_min=cfg.benchmark_warmup,
        settle_tolerance=cfg.benchmark_settle_tolerance,
        calls_per_round=cfg.benchmark_repeats,
        min_rounds=cfg.benchmark_trials,
        max_rounds=cfg.benchmark_max_rounds,
        precision=cfg.benchmark_precision,
        stop_dominated=cfg.benchmark_stop_dominated,
        time_cap_s=cfg.benchmark_time_cap_s,
        noisy_cpu_threshold=cfg.noisy_cpu_threshold,
        host_slowdown_threshold=cfg.host_slowdown_threshold,
        noisy_max_retries=cfg.noisy_max_retries,
        seed=cfg.seed,
    )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch. Deterministic-algorithms mode stays off on purpose:
    quantized kernels raise under it (HOST_NOTES.md)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def profile_model(cfg: ExperimentConfig) -> HardwareProfileTable:
    """What ``edge-opt profile`` computes: the configured model (as built: trained only if it
    has a checkpoint) profiled operator by operator on the target device's terms (the CLI
    writes it with ``reports.hardware_files.write_hardware_profile_artifacts``)."""
    from edge_opt.measure.memory import peak_activation_bytes

    built = build_configured_model(cfg)
    target = get_device_profile(
        cfg.device, cfg.benchmark_threads, cfg.power_watts, cfg.refresh_host_profile
    )
    if cfg.memory_bandwidth_gbps is not None:
        target = target.with_bandwidth(cfg.memory_bandwidth_gbps)
    model = built.model.eval()
    example = torch.zeros(cfg.latency_batch_size, *built.input_shape)
    layers = estimate_layerwise_stats(model, cfg.latency_batch_size, built.input_shape)
    peak = peak_activation_bytes(model, example).peak_bytes
    table: HardwareProfileTable = build_hardware_profile_table(
        model,
        example,
        target,
        layers,
        peak,
        "fp32",
        cfg.stream_interval_ms,
        cfg.profile_repeats,
        cfg.benchmark_threads,
        subject=built.label,
    )
    return table

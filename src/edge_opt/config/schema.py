"""Experiment configuration: YAML in, one validated and frozen ``ExperimentConfig`` out.

Every key has a default, so an empty file is a valid configuration. Unknown keys are errors
that name the closest valid key; bad values are errors that name the field, the value and
what is allowed. Types are strict: a number must be written as a number (``batch_size: "64"``
and ``epochs: yes`` are errors, not silently converted), floats must be finite, and every
count has an upper bound. ``describe_fields()`` is the source of the README's key table.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from edge_opt.config.yaml_input import (
    YamlInputError,
    clip,
    clip_repr,
    how_to_write,
    load_yaml_text,
    read_text_file,
)
from edge_opt.errors import ConfigError

PrecisionName = Literal["fp32", "fp16", "bf16", "int8"]
QuantBackend = Literal["x86", "fbgemm", "onednn", "qnnpack"]
DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion-mnist", "synthetic")
_DATASET_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}

# Strict scalars: YAML's own type must be right (no "64" -> 64, no yes -> 1, no 2.0 -> 2);
# an int is still accepted where a float is meant. Floats must be finite.
Int = Annotated[int, Strict()]
Real = Annotated[float, Strict(), AllowInfNan(False)]
Flag = Annotated[bool, Strict()]
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most tools take 32-bit seeds
MAX_EPOCHS = 10_000
MAX_IMAGES = 10_000_000
MAX_BATCH = 65_536
MAX_LIST = 100
MAX_BUDGET_MB = 1_048_576.0  # 1 TiB
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
Dim = Annotated[int, Strict(), Field(ge=1, le=MAX_BATCH)]


class ModelSpec(BaseModel):
    """Which model to build: a registered ``name`` or a ``factory``, plus its arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(None, min_length=1, description="A registered model name.")
    factory: str | None = Field(
        None,
        min_length=3,
        description="'package.module:function' or 'path/to/file.py:function' returning a model.",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Factory arguments.")
    checkpoint: str | None = Field(
        None, description="State dict to load (torch.load with weights_only=True)."
    )
    input_shape: tuple[Dim, Dim, Dim] | None = Field(
        None, description="(C, H, W) of one input; default: what the model declares."
    )
    num_classes: Int | None = Field(
        None, ge=1, le=100_000, description="Passed to the factory if set."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.name is None) == (self.factory is None):
            raise ValueError(
                "model: give exactly one of `name` (a registered model) or `factory` "
                "('package.module:function' or 'path/to/file.py:function')"
            )
        if self.input_shape is not None and min(self.input_shape) < 1:
            raise ValueError(f"model.input_shape: {list(self.input_shape)} must be positive")
        return self

    def label(self) -> str:
        return self.name or str(self.factory)


MODEL_SPEC_KEYS = tuple(ModelSpec.model_fields)
DATASET_FORMAT_NAMES: tuple[str, ...] = ("idx", "imagefolder", "npz")
Stat = Annotated[float, Strict(), AllowInfNan(False)]


class DatasetSpec(BaseModel):
    """A dataset the user has: a ``format`` with a ``path``, or a ``factory`` (see README, Data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["idx", "imagefolder", "npz"] | None = Field(
        None, description="`imagefolder` (class sub-folders), `npz` (arrays) or `idx` (4 files)."
    )
    path: str | None = Field(None, min_length=1, description="Folder or file of the data.")
    factory: str | None = Field(
        None,
        min_length=3,
        description="'package.module:function' or 'path/to/file.py:function' returning torch "
        "Datasets (train, test) or (train, val, test), or a mapping with those keys.",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Factory arguments.")
    class_names: tuple[Annotated[str, Field(min_length=1)], ...] | None = Field(
        None, min_length=2, max_length=100_000, description="Names of the classes, in label order."
    )
    mean: Stat | tuple[Stat, ...] | None = Field(
        None, description="Normalisation mean (of pixel/255), one value or one per channel."
    )
    std: Stat | tuple[Stat, ...] | None = Field(
        None, description="Normalisation std (of pixel/255), one value or one per channel."
    )
    skip_bad_images: Flag = Field(
        False, description="imagefolder: skip (and count) unreadable images instead of failing."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        problems = []
        if (self.format is None) == (self.factory is None):
            problems.append(
                "dataset: give exactly one of `format` (idx, imagefolder or npz, with `path`) "
                "or `factory` ('package.module:function')"
            )
        if self.format is not None and self.path is None:
            problems.append(f"dataset.path: missing; format {self.format} reads a path")
        if self.factory is not None and self.path is not None:
            problems.append("dataset.path: a factory builds its own data; remove `path`")
        if self.kwargs and self.factory is None:
            problems.append("dataset.kwargs: only a `factory` takes kwargs; remove them")
        if self.skip_bad_images and self.format != "imagefolder":
            problems.append("dataset.skip_bad_images: only `format: imagefolder` decodes images")
        if self.class_names is not None and self.format == "imagefolder":
            problems.append(
                "dataset.class_names: an image folder's classes are its sub-folder names; "
                "rename the folders instead"
            )
        if (self.mean is None) != (self.std is None):
            problems.append("dataset.mean, dataset.std: give both or neither")
        stds = self.std if isinstance(self.std, tuple) else (self.std,)
        if any(s is not None and s <= 0 for s in stds):
            problems.append(f"dataset.std: {self.std!r} must be > 0")
        if self.class_names is not None and len(set(self.class_names)) < len(self.class_names):
            problems.append("dataset.class_names: a name is listed twice; list each once")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def label(self) -> str:
        return f"{self.format} {self.path}" if self.format else f"factory {self.factory}"

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that were set (plain lists), as written in a config."""
        data = self.model_dump(exclude_defaults=True)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


DATASET_SPEC_KEYS = tuple(DatasetSpec.model_fields)

RAY_RESOURCE = r"^[A-Za-z0-9_.:-]{1,64}$"
RAY_BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def _changed_from_default(model: BaseModel, *but: str) -> list[str]:
    """Fields whose value differs from their default (a resolved config lists every field, at
    its default where unused, so *being set* cannot tell a no-op key)."""
    return [
        name
        for name, field in type(model).model_fields.items()
        if name not in but and getattr(model, name) != field.default
    ]


class ExecutorSpec(BaseModel):
    """Where the sweep's tasks run: in this process (``local``) or on a Ray cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["local", "ray"] = Field(
        "local", description="`local`: in this process (Ray is not imported); `ray`: tasks."
    )
    address: str = Field(
        "auto",
        min_length=1,
        description="Ray: `auto` (the cluster `ray start` made here), `HOST:PORT` of a head "
        "node, or `local` (start an embedded Ray on this machine, loopback only).",
    )
    cpus_per_task: Int = Field(
        1, ge=1, le=256, description="Ray: CPUs per prepare task (its torch threads)."
    )
    device_resource: str | None = Field(
        None,
        pattern=RAY_RESOURCE,
        description="Ray: the custom resource a target-device node carries "
        "(`ray start ... --resources='{\"NAME\": 1}'`); ONNX Runtime candidates are then "
        "also timed on that node. null: time on this machine only.",
    )
    device_wait_s: Real = Field(
        60.0, ge=0, le=3600, description="Ray: how long to wait for the device node to appear."
    )
    max_retries: Int = Field(
        2, ge=0, le=10, description="Ray: retries of a task whose worker or node died."
    )

    @field_validator("address")
    @classmethod
    def _address_form(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if value in ("auto", "local") or (
            host and "/" not in host and port.isdigit() and 0 < int(port) < 65536
        ):
            return value
        raise ValueError(
            f"executor.address: {value!r} is not `auto`, `local` or HOST:PORT "
            "(e.g. 192.168.1.10:6379, the head node's `ray start --head --port`)"
        )

    @field_validator("device_resource")
    @classmethod
    def _own_resource(cls, value: str | None) -> str | None:
        if value is not None and value in RAY_BUILTIN_RESOURCES:
            raise ValueError(
                f"executor.device_resource: {value!r} is one of Ray's built-in resources, "
                "which every node has; name the device's own (e.g. rpi4, as in "
                "`ray start --resources='{\"rpi4\": 1}'`)"
            )
        return value

    @model_validator(mode="after")
    def _ray_only(self) -> ExecutorSpec:
        if self.kind == "local" and self.device_resource is not None:
            raise ValueError(
                "executor.device_resource needs `kind: ray` (a device is a node of a Ray cluster)"
            )
        unused = _changed_from_default(self, "kind")
        if self.kind == "local" and unused:
            raise ValueError(
                f"executor.{unused[0]}: only used with `kind: ray`; set `kind: ray` or remove "
                f"{', '.join(unused)}"
            )
        return self

    @property
    def distributed(self) -> bool:
        return self.kind == "ray"


EXECUTOR_KEYS = tuple(ExecutorSpec.model_fields)


class SearchConfig(BaseModel):
    """How candidates are chosen: the full grid, or an Optuna search over per-group ratios."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Literal["grid", "optuna"] = Field(
        "grid",
        description="`grid`: every pruning_levels x precisions x runtimes candidate; `optuna`: "
        "a multi-objective search over per-layer-group pruning ratios, precision and runtime.",
    )
    trials: Int = Field(40, ge=1, le=10_000, description="Trials the search evaluates.")
    sampler: Literal["nsga2", "tpe"] = Field(
        "nsga2", description="Optuna sampler: `nsga2` (NSGA-II) or `tpe`."
    )
    seed: Seed | None = Field(None, description="Sampler seed; null = the run's `seed`.")
    population: Int = Field(
        8,
        ge=2,
        le=1000,
        description="Trials asked, screened and timed together (one generation).",
    )
    max_ratio: Real = Field(
        0.75, ge=0, lt=1, description="Largest pruning ratio of one channel group."
    )
    ratio_step: Real = Field(0.05, gt=0, le=1, description="Step of the per-group ratios.")
    accuracy_subset: Int | None = Field(
        1000,
        ge=1,
        le=MAX_IMAGES,
        description="Validation images of the cheap accuracy screen; null = all.",
    )
    max_timed: Int | None = Field(
        None, ge=1, le=10_000, description="Most trials that are timed; null = no cap."
    )
    latency_budget_ms: Real | None = Field(
        None,
        gt=0,
        le=86_400_000,
        description="Screen out a trial whose roofline lower bound on this host is above "
        "this (ms per call); null = no latency budget.",
    )

    @model_validator(mode="after")
    def _optuna_only(self) -> SearchConfig:
        unused = _changed_from_default(self, "strategy")
        if self.strategy == "grid" and unused:
            raise ValueError(
                f"search.{unused[0]}: only used with `strategy: optuna` (the grid takes "
                f"pruning_levels x precisions x runtimes); set `strategy: optuna` or remove "
                f"{', '.join(unused)}"
            )
        return self


SEARCH_KEYS = tuple(SearchConfig.model_fields)
NESTED_KEYS = {"model": MODEL_SPEC_KEYS, "search": SEARCH_KEYS, "executor": EXECUTOR_KEYS}


class ExperimentConfig(BaseModel):
    """The whole experiment, validated once and frozen.

    Example:
        >>> cfg = ExperimentConfig(dataset="synthetic", epochs=1)
        >>> cfg.latency_multiplier
        1.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    # --- reproducibility -------------------------------------------------------------------
    seed: Int = Field(
        7, ge=0, le=MAX_SEED, description="Seed for weight init, training order and subsets."
    )
    seeds: tuple[Seed, ...] | None = Field(
        None,
        min_length=1,
        max_length=MAX_LIST,
        description="Run the whole experiment once per seed (overrides `seed`) and add "
        "multi-seed summaries with 95% CIs; null = one run with `seed`.",
    )
    dataloader_seed: Int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="Seed of the training shuffle; null resolves to `seed` (the resolved "
        "config shows the value; with `seeds`, each run's seed).",
    )
    # --- data -------------------------------------------------------------------------------
    dataset: str | DatasetSpec = Field(
        "fashion-mnist",
        description="`fashion-mnist`, `mnist`, `synthetic` (tests only), or a mapping: "
        "`{format: imagefolder, path: DIR}`, `{format: npz, path: FILE}`, "
        "`{format: idx, path: DIR}` or `{factory: 'pkg.mod:fn'}` (see Data).",
    )
    data_dir: str | None = Field(
        None,
        description="Directory holding the IDX files; when set, only it (and its torchvision "
        "layout) is searched (see Data).",
    )
    train_subset: Int | None = Field(
        None,
        ge=1,
        le=MAX_IMAGES,
        description="Training images drawn at random (seeded); null = all.",
    )
    val_subset: Int | None = Field(
        5000,
        ge=1,
        le=MAX_IMAGES,
        description="Validation images held out of the training file (selection only); "
        "null = the dataset's default hold-out.",
    )
    test_subset: Int | None = Field(
        None,
        ge=1,
        le=MAX_IMAGES,
        description="Test images drawn at random (reporting only); null = all.",
    )
    batch_size: Int = Field(
        128, ge=1, le=MAX_BATCH, description="Training/evaluation batch, also the throughput batch."
    )
    num_workers: Int = Field(0, ge=0, le=64, description="DataLoader worker processes.")
    # --- model and training -----------------------------------------------------------------
    model: ModelSpec = Field(
        default_factory=lambda: ModelSpec(name="SmallCNN"),
        description="A registered model name (`SmallCNN`, `TinyResNet`, `TinyMobileNet`) or a "
        "mapping with `name` or `factory`, `kwargs`, `checkpoint`, `input_shape`, `num_classes`.",
    )
    epochs: Int = Field(2, ge=0, le=MAX_EPOCHS, description="Baseline training epochs (Adam).")
    learning_rate: Real = Field(1e-3, gt=0, le=10, description="Adam learning rate.")
    train_threads: Int = Field(
        2,
        ge=1,
        le=1024,
        description="Torch intra-op threads for training and fine-tuning, wherever they run "
        "(this process or a Ray task). Gradient sums are split across threads, so the weights "
        "depend on this number: it is fixed, not the machine's core count, so a run trains "
        "the same weights in every process (recorded; part of the cache key).",
    )
    fine_tune_epochs: Int = Field(
        0, ge=0, le=MAX_EPOCHS, description="Epochs of fine-tuning after each pruning level > 0."
    )
    device: Literal["host", "cpu", "raspberry-pi-4", "jetson-nano", "desktop-ddr4"] = Field(
        "host",
        description="Target device profile for the roofline, bottleneck and latency projection: "
        "`host` (this machine, measured; `cpu` is the same), `raspberry-pi-4`, `jetson-nano`, "
        "`desktop-ddr4`. Everything is measured on this machine's CPU.",
    )
    # --- the sweep --------------------------------------------------------------------------
    pruning_levels: tuple[Real, ...] = Field(
        (0.0, 0.25, 0.5, 0.7),
        min_length=1,
        max_length=MAX_LIST,
        description="Fractions of conv output channels removed, each in [0, 1).",
    )
    pruning_scope: Literal["uniform", "global"] = Field(
        "uniform",
        description="`uniform`: every channel group loses the same fraction; `global`: one "
        "L1 threshold across groups (mean-normalised).",
    )
    channel_multiple: Literal[1, 4, 8, 16] = Field(
        1,
        description="Round each pruned layer's kept channels down to a multiple of this (1, 4, "
        "8 or 16) so kernels stay on their vectorised fast paths; a layer that would keep 0 is "
        "left unpruned (torch-pruning's round_to); 1 = no rounding.",
    )
    precisions: tuple[PrecisionName, ...] = Field(
        ("fp32", "fp16", "bf16", "int8"),
        min_length=1,
        description="Any of `fp32`, `fp16`, `bf16`, `int8` (static PTQ).",
    )
    runtimes: tuple[Literal["eager", "onnxruntime", "compiled", "executorch"], ...] = Field(
        ("eager",),
        min_length=1,
        description="Where candidates run: `eager` PyTorch, `onnxruntime` (ONNX export), "
        "`compiled` (torch.compile with freezing), `executorch` (a .pte lowered to XNNPACK; "
        "fp32 and int8).",
    )
    quantization_backend: QuantBackend = Field(
        "x86", description="int8 engine: `x86`, `fbgemm`, `onednn` or `qnnpack`."
    )
    calibration_batches: Int = Field(
        8, ge=1, le=10_000, description="Training batches used to calibrate int8 observers."
    )
    # --- measurement ------------------------------------------------------------------------
    latency_batch_size: Int = Field(
        1, ge=1, le=MAX_BATCH, description="Batch of the timed latency calls (1 = streaming)."
    )
    benchmark_warmup: Int = Field(
        10,
        ge=0,
        le=100_000,
        description="Warm-up block size; blocks repeat until the median settles.",
    )
    benchmark_repeats: Int = Field(
        100, ge=1, le=1_000_000, description="Timed calls per candidate in each interleaved round."
    )
    benchmark_trials: Int = Field(
        3, ge=1, le=1000, description="Minimum interleaved timing rounds."
    )
    benchmark_precision: Real = Field(
        0.02,
        gt=0,
        lt=1,
        description="Stop timing a candidate once the 95% CI of its p50 is within this "
        "fraction of the p50 (0.02 = +-2%); the CI includes the spread between rounds and "
        "instances.",
    )
    benchmark_instances: Int = Field(
        3,
        ge=1,
        le=16,
        description="Independently built instances of each candidate timed in the same rounds "
        "(fresh ONNX Runtime session, fresh model copy); the p50 and its CI pool them.",
    )
    benchmark_stop_dominated: Flag = Field(
        True,
        description="Stop timing a candidate once one at least as accurate, within the memory "
        "budget (and its p95 within `latency_budget_ms`) is faster beyond both p50 CIs at twice "
        "their half-widths and on the mean: its p50 keeps a wider CI (`latency_stop_reason` "
        "`dominated`), no decision changes. false: time every candidate to "
        "`benchmark_precision`.",
    )
    benchmark_max_rounds: Int = Field(
        20, ge=1, le=1000, description="Maximum interleaved timing rounds."
    )
    benchmark_time_cap_s: Real = Field(
        10.0,
        gt=0,
        le=86_400,
        description="Timing budget per candidate (s); rounds stop when spent.",
    )
    benchmark_settle_tolerance: Real = Field(
        0.05, gt=0, le=10, description="Warm-up ends when the block median moves less than this."
    )
    noisy_cpu_threshold: Real = Field(
        0.5,
        ge=0,
        le=1024,
        description="Other processes' CPU use (cores) that makes a timing round noisy.",
    )
    host_slowdown_threshold: Real = Field(
        0.25,
        gt=0,
        le=100,
        description="Reference-kernel slowdown vs its typical (median) time on this core, "
        "beyond 3 MADs of its jitter, that makes a round noisy.",
    )
    noisy_max_retries: Int = Field(
        2, ge=0, le=100, description="Retries of a noisy round before it is kept and flagged."
    )
    throughput_repeats: Int = Field(
        10,
        ge=1,
        le=100_000,
        description="Timed calls per round at `batch_size` for throughput, in 3 interleaved "
        "rounds (`benchmark_trials` if fewer); the figure is their mean. Throughput is "
        "reported, it decides nothing: no precision target.",
    )
    benchmark_threads: Int = Field(
        1, ge=1, le=1024, description="Torch intra-op threads while timing (recorded)."
    )
    measure_peak_rss: Flag = Field(
        True, description="Probe each candidate's peak RSS in a fresh child process."
    )
    # --- device model and budgets -----------------------------------------------------------
    power_watts: Real = Field(
        5.0, gt=0, le=100_000, description="Power assumed by the energy proxy."
    )
    memory_budgets_mb: tuple[Annotated[Real, Field(gt=0, le=MAX_BUDGET_MB)], ...] = Field(
        (0.03125, 0.125, 1.0),
        min_length=1,
        max_length=MAX_LIST,
        description="Model-size budgets in MiB; one `violates_<b>mb` column each.",
    )
    active_memory_budget_mb: Real = Field(
        0.03125, gt=0, le=MAX_BUDGET_MB, description="The budget that decides accepted/rejected."
    )
    memory_budget_metric: Literal["model", "runtime"] = Field(
        "model",
        description="What budgets constrain: `model` (serialized size) or `runtime` "
        "(size + peak live activations).",
    )
    cpu_frequency_scale: Real = Field(
        1.0,
        gt=0,
        le=100,
        description="Target CPU speed / this host's; != 1 adds `*_scaled` columns.",
    )
    memory_bandwidth_gbps: Real | None = Field(
        None,
        gt=0,
        le=100_000,
        description="GB/s the bandwidth utilisation compares against and the target's "
        "bandwidth; null = measured on this host (utilisation) and the device profile's.",
    )
    stream_interval_ms: Real | None = Field(
        33.3,
        gt=0,
        le=86_400_000,
        description="Time between stream inputs (33.3 = 30 frames/s) for stream utilisation.",
    )
    profile_repeats: Int = Field(
        20,
        ge=1,
        le=100_000,
        description="Forward passes under the PyTorch profiler (operator profile).",
    )
    peak_compute_gmacs: Real | None = Field(
        None, gt=0, le=1e9, description="Peak GMAC/s of the device; enables compute utilisation."
    )
    # --- selection --------------------------------------------------------------------------
    latency_budget_ms: Real | None = Field(
        None,
        gt=0,
        le=86_400_000,
        description="Per-frame latency budget: a candidate whose p95 (the device's own when a "
        "device node measured it, else this host's) exceeds it is rejected; null = none.",
    )
    max_accuracy_drop: Real = Field(
        0.01,
        ge=0,
        le=1,
        description="Largest validation-accuracy drop vs baseline for the recommendation.",
    )
    pareto_use_ci: Flag = Field(
        False, description="Frontiers rank by the 95% lower bound of accuracy."
    )
    refresh_host_profile: Flag = Field(
        False,
        description="Measure this machine's roofs again instead of using the cached host "
        "profile (also `--refresh-host-profile`); a cached profile older than 7 days or taken "
        "under load is re-measured anyway.",
    )
    search: SearchConfig = Field(
        default_factory=SearchConfig,
        description="How candidates are chosen: a mapping, `{strategy: grid}` (the default) or "
        "e.g. `{strategy: optuna, trials: 40}`; every key under *Search instead of a grid*.",
    )
    # --- execution --------------------------------------------------------------------------
    executor: ExecutorSpec = Field(
        default_factory=ExecutorSpec,
        description="`local` (default), or `{kind: ray, address, cpus_per_task, "
        "device_resource, device_wait_s, max_retries}`: prepare tasks fan out over a Ray "
        "cluster and, with `device_resource`, ONNX Runtime candidates are also timed on the "
        "target device's node (README: Distributed runs and device nodes).",
    )
    # --- output -----------------------------------------------------------------------------
    output_dir: str = Field("outputs/default", min_length=1, description="Run directory.")

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        if isinstance(data.get("dataset"), str):
            name = data["dataset"].strip().lower()
            data = {**data, "dataset": _DATASET_ALIASES.get(name, name)}
        if isinstance(data.get("model"), str):
            data = {**data, "model": {"name": data["model"]}}
        if isinstance(data.get("executor"), str):
            data = {**data, "executor": {"kind": data["executor"]}}
        model = data.get("model")
        if isinstance(model, Mapping) and model.get("checkpoint") and "epochs" not in data:
            # A checkpoint is a trained model: train only if `epochs` asks for it.
            data = {**data, "epochs": 0}
        return data

    @model_validator(mode="after")
    def _check_relations(self) -> ExperimentConfig:
        problems: list[str] = []
        if isinstance(self.dataset, DatasetSpec) and self.data_dir is not None:
            problems.append(
                f"data_dir: {self.data_dir!r} is only read for a dataset name; a dataset mapping "
                "has its own `path`: remove data_dir"
            )
        if isinstance(self.dataset, str) and self.dataset not in DATASET_NAMES:
            hint = (
                f"; for your own data write a mapping: {{format: {self.dataset}, path: ...}}"
                if self.dataset in DATASET_FORMAT_NAMES
                else ""
            )
            problems.append(
                f"dataset: {self.dataset!r} is not a dataset; allowed: {', '.join(DATASET_NAMES)}"
                f"{hint}"
            )
        for i, level in enumerate(self.pruning_levels):
            if not 0.0 <= level < 1.0:
                problems.append(
                    f"pruning_levels.{i}: {level!r} is outside [0, 1); "
                    "use e.g. 0.5 to remove half the channels"
                )
        problems += _duplicates("pruning_levels", self.pruning_levels)
        problems += _duplicates("precisions", self.precisions)
        problems += _duplicates("runtimes", self.runtimes)
        problems += _duplicates("memory_budgets_mb", self.memory_budgets_mb)
        problems += _duplicates("seeds", self.seeds or ())
        if self.benchmark_max_rounds < self.benchmark_trials:
            problems.append(
                f"benchmark_max_rounds: {self.benchmark_max_rounds} is below benchmark_trials "
                f"({self.benchmark_trials}); raise it or lower benchmark_trials"
            )
        if self.active_memory_budget_mb not in self.memory_budgets_mb:
            problems.append(
                f"active_memory_budget_mb: {self.active_memory_budget_mb!r} is not one of "
                f"memory_budgets_mb {list(self.memory_budgets_mb)}; add it there or pick one"
            )
        if problems:
            # A ValueError inside a validator becomes one pydantic error; we split it again.
            raise ValueError("\n".join(problems))
        if self.dataloader_seed is None:
            # Resolved here, once, so every reader (and config_resolved.yaml) sees the value
            # used; object.__setattr__ because the model is frozen. The field is kept out of
            # model_fields_set (also for an explicit null): that is how a multi-seed run
            # knows the shuffle follows each run's seed.
            object.__setattr__(self, "dataloader_seed", self.seed)
            self.__pydantic_fields_set__.discard("dataloader_seed")
        return self

    @property
    def latency_multiplier(self) -> float:
        """Modelled slow-down of the target vs this host: 1 / cpu_frequency_scale."""
        return 1.0 / self.cpu_frequency_scale

    @property
    def dataloader_seed_follows_seed(self) -> bool:
        """True when ``dataloader_seed`` was not given and so tracks ``seed``."""
        return "dataloader_seed" not in self.model_fields_set

    @property
    def effective_dataloader_seed(self) -> int:
        """The training-shuffle seed: ``dataloader_seed`` (already resolved to ``seed`` when
        not given; the fallback covers configs built without validation)."""
        return self.seed if self.dataloader_seed is None else self.dataloader_seed

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-friendly values (tuples become lists; a bare model name stays a name)."""
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_dump().items()}
        model = {k: list(v) if isinstance(v, tuple) else v for k, v in data["model"].items()}
        only_name = all(model[k] in (None, {}) for k in model if k != "name")
        data["model"] = model["name"] if only_name else {k: v for k, v in model.items() if v}
        if isinstance(self.dataset, DatasetSpec):
            data["dataset"] = self.dataset.to_dict()
        if self.seeds and self.dataloader_seed_follows_seed:
            # Each run of a multi-seed config shuffles with its own seed: no single value to
            # show here (each seed_<s>/config_resolved.yaml shows its own), and a number would
            # pin every run's shuffle when this file is loaded again.
            data["dataloader_seed"] = None
        return data


def _duplicates(field: str, values: Iterable[object]) -> list[str]:
    seen: set[object] = set()
    dupes = [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]
    if dupes:
        return [f"{field}: {dupes[0]!r} is listed twice; list each value once"]
    return []


def field_names() -> list[str]:
    """All valid configuration keys, in declaration order."""
    return list(ExperimentConfig.model_fields)


def describe_fields() -> list[tuple[str, str, str]]:
    """(key, default, description) for every key: the README's table is generated from this."""
    rows = []
    for name, info in ExperimentConfig.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if isinstance(default, tuple):
            default = list(default)
        if isinstance(default, ModelSpec):
            default = default.label()
        if isinstance(default, SearchConfig):
            default = {"strategy": default.strategy}
        elif isinstance(default, BaseModel):
            default = default.model_dump()
        rows.append((name, json.dumps(default), info.description or ""))
    return rows


RENAMED_KEYS = {
    "benchmark_iqr_threshold": "benchmark_iqr_threshold was replaced by benchmark_precision "
    "(the p50's 95% CI half-width relative to the p50, e.g. 0.02): IQR/median measures the "
    "spread of the latency distribution, which more samples do not shrink",
}


def _unknown_key_problems(keys: Iterable[str], valid: list[str], prefix: str = "") -> list[str]:
    problems = []
    for key in keys:
        if key in valid:
            continue
        if not prefix and key in RENAMED_KEYS:
            problems.append(f"{key}: {RENAMED_KEYS[key]}")
            continue
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
        problems.append(f"{prefix}{clip(str(key))}: unknown key{hint}")
    return problems


# pydantic error type -> what the value should have been (for the "write ..." hint)
_WANTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "finite_number": "a finite number",
}


def _format_validation_error(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    errors = exc.errors()
    # A list whose items failed is also reported "too short after validation" (the bad items
    # are dropped first): that second line contradicts the first, so it is left out.
    with_bad_items = {err["loc"][0] for err in errors if len(err["loc"]) > 1}
    for err in errors:
        if err["type"] == "too_short" and err["loc"] and err["loc"][0] in with_bad_items:
            continue
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "value_error":
            # Our own relation checks: already "field: value ..." lines.
            problems += msg.removeprefix("Value error, ").split("\n")
            continue
        field = str(err["loc"][0]) if err["loc"] else ""
        info = ExperimentConfig.model_fields.get(field)
        if field == "search" and len(err["loc"]) > 1:
            info = SearchConfig.model_fields.get(str(err["loc"][1]))
        hint = f" ({info.description})" if info and info.description else ""
        fix = how_to_write(_WANTED.get(err["type"]), err.get("input"))
        problems.append(f"{loc}: {msg}, got {clip_repr(err.get('input'))}{hint}{fix}")
    return problems


def _dataset_value(value: Any) -> tuple[Any, list[str]]:
    """``dataset`` checked on its own: a name stays a name; a mapping becomes a DatasetSpec
    (its problems as ``dataset.<key>`` lines; a bad one is replaced by the default so the
    rest of the config is still checked)."""
    if isinstance(value, str):
        return value, []
    if not isinstance(value, Mapping):
        return "fashion-mnist", [
            f"dataset: got {clip_repr(value)}; write a dataset name ({', '.join(DATASET_NAMES)}) "
            "or a mapping such as {format: imagefolder, path: DIR}"
        ]
    problems = _unknown_key_problems(value.keys(), list(DATASET_SPEC_KEYS), "dataset.")
    known = {k: v for k, v in value.items() if k in DATASET_SPEC_KEYS}
    try:
        spec = DatasetSpec(**known)
    except ValidationError as exc:
        for err in exc.errors():
            if err["type"] == "value_error":
                problems += err["msg"].removeprefix("Value error, ").split("\n")
                continue
            loc = ".".join(str(p) for p in ("dataset", *err["loc"]))
            fix = how_to_write(_WANTED.get(err["type"]), err.get("input"))
            problems.append(f"{loc}: {err['msg']}, got {clip_repr(err.get('input'))}{fix}")
        return "fashion-mnist", problems
    return spec, problems


def build_config(raw: Mapping[str, Any], source: str | None = None) -> ExperimentConfig:
    """Validate a mapping of config keys.

    Raises:
        ConfigError: listing every unknown key and every invalid value.
    """
    problems = _unknown_key_problems(raw.keys(), field_names())
    known = {k: v for k, v in raw.items() if k in ExperimentConfig.model_fields}
    for name, keys in NESTED_KEYS.items():
        if isinstance(known.get(name), Mapping):
            extra = _unknown_key_problems(known[name].keys(), list(keys), f"{name}.")
            problems += extra
            if extra:
                known[name] = {k: v for k, v in known[name].items() if k in keys}
    if "dataset" in known:
        dataset, dataset_problems = _dataset_value(known["dataset"])
        problems += dataset_problems
        known["dataset"] = dataset
    try:
        cfg = ExperimentConfig(**known)
    except ValidationError as exc:
        problems += _format_validation_error(exc)
        raise ConfigError(problems, source) from None
    if problems:
        raise ConfigError(problems, source)
    return cfg


def _takes_text(key: str) -> bool:
    info = ExperimentConfig.model_fields.get(key)
    return info is not None and info.annotation in (str, str | None, str | DatasetSpec)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` override; the value is read as YAML (``[0, 0.5]``, ``true``,
    ``1e-3``), as if it were written in the file. A key whose value is text (``output_dir``,
    ``data_dir``, ``dataset``) keeps the text as given even if it looks like a number."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError([f"--set {clip_repr(text)}: expected KEY=VALUE, e.g. --set epochs=1"])
    try:
        parsed = load_yaml_text(value) if value.strip() else None
    except YamlInputError as exc:
        raise ConfigError([f"--set {key}: {exc}"]) from None
    if _takes_text(key) and isinstance(parsed, (bool, int, float)):
        parsed = value.strip()
    return key, parsed


def load_config(
    path: str | Path, overrides: Iterable[str] | Mapping[str, Any] = ()
) -> ExperimentConfig:
    """Read a YAML file into a validated, frozen ``ExperimentConfig``.

    Args:
        path: YAML file with a mapping of config keys (every key is optional).
        overrides: ``"key=value"`` strings (as given to ``--set``) or a mapping, applied last.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing, too large, binary, not UTF-8 or not YAML, has a
            duplicate key or an alias expansion beyond ``MAX_YAML_VALUES``, or keys/values
            are invalid.

    Example:
        >>> cfg = load_config("configs/quick.yaml", ["epochs=1"])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise ConfigError([f"{path}: {what}; pass a YAML config such as configs/default.yaml"])
    try:
        raw = load_yaml_text(read_text_file(path))
    except YamlInputError as exc:
        raise ConfigError([str(exc)], str(path)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"top level must be a mapping of keys, got {type(raw).__name__}"], str(path)
        )
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    pairs = list(items)
    try:
        return build_config({**raw, **dict(pairs)}, str(path))
    except ConfigError as exc:  # a bad value that came from --set: say so, not only the file
        named = [k for k, _ in pairs if any(p.startswith((f"{k}:", f"{k}.")) for p in exc.problems)]
        if not named:
            raise
        raise ConfigError(exc.problems, f"{path} with --set {', '.join(named)}") from None


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML (written next to the outputs)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)

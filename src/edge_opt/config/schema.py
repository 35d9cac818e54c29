"""The experiment's schema: ``ExperimentConfig``, every key with its default, bounds and
meaning, validated once and frozen. Its nested sections are ``config.sections``; reading YAML
is ``config.loading``."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)

from edge_opt.config.checks import (
    colliding_levels,
    duplicates,
    epoch_budget_problems,
    recovery_problems,
)
from edge_opt.config.sections import (
    DatasetSpec,
    ExecutorSpec,
    ModelSpec,
    RecoveryConfig,
    SearchConfig,
    path_formats,
)
from edge_opt.config.types import (
    MAX_BATCH,
    MAX_BUDGET_MB,
    MAX_EPOCHS,
    MAX_IMAGES,
    MAX_LIST,
    MAX_SEED,
    DeviceName,
    Flag,
    Int,
    PrecisionName,
    QuantBackend,
    Real,
    RuntimeName,
    Seed,
    default_engine,
    detected_device,
    registry,
)
from edge_opt.infra.cpu import this_cpu

DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion-mnist", "synthetic")

Epochs = Annotated[int, Field(ge=0, le=MAX_EPOCHS), Strict()]
# One number for every level, or {level: epochs}; a level's entry is checked against the grid.
LevelKey = Annotated[float, Field(ge=0, lt=1)]
EpochBudget = Epochs | Annotated[dict[LevelKey, Epochs], Field(max_length=MAX_LIST)]


_DATASET_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}


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
    fine_tune_epochs: EpochBudget = Field(
        0,
        description="Epochs of fine-tuning of every pruning level, 0 included (every candidate "
        "had the same training budget): one number, or a mapping from each of `pruning_levels` "
        "to its own epochs (e.g. `{0.0: 1, 0.5: 1, 0.7: 3}`).",
    )
    recovery: RecoveryConfig = Field(
        default_factory=RecoveryConfig,
        description="How pruned variants recover in their fine-tuning: `{distillation, "
        "temperature, distill_weight, steps, early_stop_patience}`; every key under "
        "*Recovery after pruning*.",
    )
    device: DeviceName = Field(
        "host",
        description="The target device: the verdict answers for it, and its profile draws the "
        "roofline and the latency projection. A registered device; `host` and `cpu`: this "
        "machine, measured; `auto`: this machine, as the registered board it is (a Raspberry "
        "Pi 4 running edge-opt resolves to `raspberry-pi-4`), else `host`. Latencies are "
        "measured on the machine that runs edge-opt (or a device node).",
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
        description="Registered precisions to convert each level to (int8: static PTQ).",
    )
    runtimes: tuple[RuntimeName, ...] = Field(
        ("eager",),
        min_length=1,
        description="Registered runtimes candidates run in (docs/runtimes.md); a runtime that "
        "cannot run a precision gives a `skipped` row.",
    )
    quantization_backend: QuantBackend = Field(
        "auto",
        description="int8 engine; `auto` resolves to this CPU's (`x86` on x86-64, `qnnpack` on "
        "Arm); an engine torch does not ship for this CPU is refused.",
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
        "target device's node (docs/devices.md, Distributed runs and device nodes).",
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
                if self.dataset in path_formats()
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
        problems += duplicates("pruning_levels", self.pruning_levels)
        problems += colliding_levels(self.pruning_levels)
        problems += duplicates("precisions", self.precisions)
        problems += duplicates("runtimes", self.runtimes)
        problems += duplicates("memory_budgets_mb", self.memory_budgets_mb)
        problems += duplicates("seeds", self.seeds or ())
        strategy = self.search.strategy
        epochs = self.fine_tune_epochs
        problems += epoch_budget_problems(epochs, self.pruning_levels, strategy)
        problems += recovery_problems(
            self.recovery, self.pruning_scope, strategy, epochs, self.channel_multiple
        )
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
        problems += self._engine_problems()
        if problems:
            # A ValueError inside a validator becomes one pydantic error; we split it again.
            raise ValueError("\n".join(problems))
        if self.device == "auto":
            # This machine: a board a profile names (a Raspberry Pi 4), else `host`, measured.
            object.__setattr__(self, "device", detected_device(this_cpu().board) or "host")
        if self.quantization_backend == "auto":
            # Resolved here, once, for this CPU: the resolved config shows the engine used.
            engine = default_engine(platform.machine())
            object.__setattr__(self, "quantization_backend", engine)
        if self.dataloader_seed is None:
            # Resolved here, once, so every reader (and config_resolved.yaml) sees the value
            # used; object.__setattr__ because the model is frozen. The field is kept out of
            # model_fields_set (also for an explicit null): that is how a multi-seed run
            # knows the shuffle follows each run's seed.
            object.__setattr__(self, "dataloader_seed", self.seed)
            self.__pydantic_fields_set__.discard("dataloader_seed")
        return self

    def _engine_problems(self) -> list[str]:
        """An int8 engine torch does not ship for this CPU is refused (it would fail every int8
        candidate with ``unknown architecture``)."""
        machine = platform.machine()
        fits = default_engine(machine)
        if self.quantization_backend == "auto":
            if fits is None:
                return [f"quantization_backend: auto finds no int8 engine for this CPU ({machine})"]
            return []
        engines = registry("engine")
        if machine in engines.get(self.quantization_backend).machines:
            return []
        usable = [n for n in engines.names() if machine in engines.get(n).machines]
        return [
            f"quantization_backend: {self.quantization_backend!r} is not built for this CPU "
            f"({machine}); use `auto` (here: {fits}) or one of {', '.join(usable) or 'none'}"
        ]

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

"""The config's nested sections: ``model``, ``dataset`` (a mapping), ``executor``, ``search`` and
``recovery``.

Each is a frozen pydantic model with strict types; a key set to a non-default value that its
section's mode ignores is an error (it would silently do nothing)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from edge_opt.config.types import (
    MAX_IMAGES,
    DatasetFormatName,
    Dim,
    ExecutorName,
    Flag,
    Int,
    Real,
    SamplerName,
    Seed,
    Stat,
    registry,
)


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


def path_formats() -> list[str]:
    """The registered dataset formats that read a ``path`` (plugins' included)."""
    formats = registry("dataset format")
    return [n for n in formats.names() if formats.get(n).takes_path]


class DatasetSpec(BaseModel):
    """A dataset the user has: a ``format`` with a ``path``, or a ``factory`` (docs/data.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: DatasetFormatName | None = Field(
        None,
        description="A registered dataset format reading `path` (docs/data.md): `imagefolder` "
        "(class sub-folders), `npz` (arrays), `idx` (4 files), or a plugin's.",
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
        spec = None if self.format is None else registry("dataset format").get(self.format)
        paths = ", ".join(path_formats())
        if (self.format is None) == (self.factory is None):
            problems.append(
                f"dataset: give exactly one of `format` ({paths}, with `path`) "
                "or `factory` ('package.module:function')"
            )
        if spec is not None and not spec.takes_path:
            problems.append(
                f"dataset.format: {self.format!r} reads no path; write `factory: "
                "'package.module:function'` instead, or a format that reads one: " + paths
            )
        if self.format is not None and self.path is None:
            problems.append(f"dataset.path: missing; format {self.format} reads a path")
        if self.factory is not None and self.path is not None:
            problems.append("dataset.path: a factory builds its own data; remove `path`")
        if self.kwargs and self.factory is None and not (spec is not None and spec.takes_kwargs):
            problems.append(
                "dataset.kwargs: only a `factory` (or a format that takes them) takes kwargs; "
                "remove them"
            )
        if self.skip_bad_images and not (spec is not None and spec.decodes_images):
            problems.append(
                "dataset.skip_bad_images: only a format that decodes image files "
                "(`format: imagefolder`) skips bad ones"
            )
        if self.class_names is not None and spec is not None and spec.names_classes:
            problems.append(
                f"dataset.class_names: format {self.format}'s classes are named by the data "
                "(an image folder's sub-folder names); rename the folders instead"
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

    kind: ExecutorName = Field(
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
    sampler: SamplerName = Field("nsga2", description="Optuna sampler: `nsga2` (NSGA-II) or `tpe`.")
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


class RecoveryConfig(BaseModel):
    """How a pruned variant recovers its accuracy in its ``fine_tune_epochs``: plain
    cross-entropy or distillation from the trained baseline, pruned in one step or several,
    stopped early or not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    distillation: Flag = Field(
        False,
        description="Fine-tune against the trained baseline as teacher: the loss is "
        "`distill_weight` x T^2 x KL(teacher || student, both softened by `temperature`) plus "
        "(1 - `distill_weight`) x cross-entropy (Hinton et al. 2015). The baseline is already "
        "trained, so the teacher costs one forward pass per batch. Off by default: on the "
        "default config it did not help (benchmarks/recovery.py; docs/recovery.md).",
    )
    temperature: Real = Field(
        2.0, gt=0, le=100, description="Distillation: the softmax temperature T of both logits."
    )
    distill_weight: Real = Field(
        0.5, ge=0, le=1, description="Distillation: the weight of the KL term (0: cross-entropy)."
    )
    steps: Int = Field(
        1,
        ge=1,
        le=10,
        description="Prune each level in this many equal steps (0 -> level/steps -> ... -> "
        "level, torch-pruning's iterative pruning), each on the weights the previous step's "
        "fine-tuning left; the level's fine-tuning budget is split evenly between the steps "
        "(in batches), so the total training is the same. 1 = one-shot. `uniform` scope only.",
    )
    early_stop_patience: Int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Stop fine-tuning a level once its validation loss has not fallen for this "
        "many epochs, keeping the epoch with the lowest; null = train every budgeted epoch.",
    )

    @model_validator(mode="after")
    def _distillation_only(self) -> RecoveryConfig:
        unused = [k for k in _changed_from_default(self) if k in ("temperature", "distill_weight")]
        if not self.distillation and unused:
            raise ValueError(
                f"recovery.{unused[0]}: only used with `distillation: true`; set it or remove "
                f"{', '.join(unused)}"
            )
        return self

    def describe(self) -> str:
        """One phrase for a report: how the levels were recovered."""
        how = (
            f"distilled from the trained baseline (T={self.temperature:g}, KL weight "
            f"{self.distill_weight:g})"
            if self.distillation
            else "plain cross-entropy"
        )
        steps = "one-shot pruning" if self.steps == 1 else f"pruned in {self.steps} steps"
        stop = (
            ""
            if self.early_stop_patience is None
            else f", stopped after {self.early_stop_patience} epoch(s) without a better "
            "validation loss"
        )
        return f"{how}, {steps}{stop}"


RECOVERY_KEYS = tuple(RecoveryConfig.model_fields)


NESTED_KEYS = {
    "model": MODEL_SPEC_KEYS,
    "search": SEARCH_KEYS,
    "executor": EXECUTOR_KEYS,
    "recovery": RECOVERY_KEYS,
}

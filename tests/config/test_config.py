from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from edge_opt.config.loading import build_config, load_config
from edge_opt.config.schema import ExperimentConfig
from edge_opt.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SPECIFIED = [
    "seed",
    "dataset",
    "batch_size",
    "epochs",
    "learning_rate",
    "train_subset",
    "val_subset",
    "dataloader_seed",
    "num_workers",
    "pruning_levels",
    "precisions",
    "power_watts",
    "calibration_batches",
    "memory_budgets_mb",
    "active_memory_budget_mb",
    "cpu_frequency_scale",
    "memory_bandwidth_gbps",
    "benchmark_repeats",
    "output_dir",
]
EARLIER = [
    "benchmark_warmup",
    "benchmark_trials",
    "device",
    "quantization_backend",
    "fine_tune_epochs",
    "pareto_use_ci",
    "peak_compute_gmacs",
    "model",
]


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(raw)
    return info.value.problems


def test_every_specified_and_earlier_key_is_accepted() -> None:
    assert set(SPECIFIED + EARLIER) <= set(ExperimentConfig.model_fields)


@pytest.mark.parametrize("name", ["default.yaml", "quick.yaml"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(REPO / "configs" / name)
    assert cfg.active_memory_budget_mb in cfg.memory_budgets_mb


def test_unknown_key_names_the_closest_valid_one() -> None:
    assert problems({"epoch": 3}) == ["epoch: unknown key; did you mean 'epochs'?"]


def test_bad_type_and_range_name_field_value_and_rule() -> None:
    found = problems({"batch_size": 0, "learning_rate": "fast"})
    assert found[0] == (
        "batch_size: Input should be greater than or equal to 1, got 0 "
        "(Training/evaluation batch, also the throughput batch.)"
    )
    assert found[1].startswith("learning_rate: Input should be a valid number")
    assert "got 'fast'" in found[1]


def test_enum_values_list_what_is_allowed() -> None:
    [problem] = problems({"precisions": ["fp32", "int4"]})
    assert problem.startswith("precisions.1: Input should be 'fp32', 'fp16', 'bf16' or 'int8'")


def test_relations_between_fields() -> None:
    found = problems(
        {
            "pruning_levels": [0.5, 1.0, 0.5],
            "memory_budgets_mb": [1.0],
            "active_memory_budget_mb": 2.0,
            "dataset": "cifar",
        }
    )
    assert found == [
        "dataset: 'cifar' is not a dataset; allowed: mnist, fashion-mnist, synthetic",
        "pruning_levels.1: 1.0 is outside [0, 1); use e.g. 0.5 to remove half the channels",
        "pruning_levels: 0.5 is listed twice; list each value once",
        "active_memory_budget_mb: 2.0 is not one of memory_budgets_mb [1.0]; "
        "add it there or pick one",
    ]


def test_all_problems_are_reported_at_once() -> None:
    assert len(problems({"epoch": 1, "seed": -1, "device": "cuda"})) == 3


def test_config_is_frozen_and_overrides_apply(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"epochs": 3, "dataset": "FASHION_MNIST"}))
    cfg = load_config(path, ["epochs=1", "pruning_levels=[0, 0.5]"])
    assert cfg.epochs == 1
    assert cfg.pruning_levels == (0.0, 0.5)
    assert cfg.dataset == "fashion-mnist"
    with pytest.raises(ValidationError):
        cfg.epochs = 5  # type: ignore[misc]


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="top level must be a mapping of keys, got list"):
        load_config(bad)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(REPO / "configs" / "quick.yaml", ["epochs"])


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    cfg = load_config(path)
    assert cfg == ExperimentConfig()
    assert cfg.latency_multiplier == 1.0
    assert cfg.effective_dataloader_seed == cfg.seed


def test_latency_multiplier_from_cpu_frequency_scale() -> None:
    assert build_config({"cpu_frequency_scale": 0.5}).latency_multiplier == 2.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"executor": {"kind": "local", "address": "10.0.0.1:6379"}},
            r"executor\.address: only used with `kind: ray`",
        ),
        ({"executor": {"cpus_per_task": 2}}, r"executor\.cpus_per_task: only used with"),
        ({"search": {"strategy": "grid", "trials": 50}}, r"search\.trials: only used with"),
        ({"search": {"population": 4}}, r"search\.population: only used with"),
        (
            {"executor": {"kind": "ray", "address": "nonsense"}},
            r"executor\.address: 'nonsense' is not `auto`, `local` or HOST:PORT",
        ),
        (
            {"executor": {"kind": "ray", "address": "http://head:6379"}},
            r"is not `auto`, `local` or HOST:PORT",
        ),
        (
            {"executor": {"kind": "ray", "address": "local", "device_resource": "CPU"}},
            r"'CPU' is one of Ray's built-in resources",
        ),
    ],
)
def test_keys_that_would_do_nothing_or_cannot_work_are_refused(section, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(section)


def test_a_resolved_config_loads_again(tmp_path: Path) -> None:
    # config_resolved.yaml lists every nested key at its default: none of them is a no-op key.
    from edge_opt.config.loading import dump_config

    path = tmp_path / "config_resolved.yaml"
    path.write_text(dump_config(build_config({"epochs": 1})))
    assert load_config(path) == build_config({"epochs": 1})
    ray = build_config({"executor": {"kind": "ray", "address": "10.0.0.1:6379"}})
    path.write_text(dump_config(ray))
    assert load_config(path).executor.address == "10.0.0.1:6379"


def test_a_bad_value_from_set_is_blamed_on_set_not_only_on_the_file() -> None:
    from edge_opt.config.loading import load_config
    from edge_opt.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config("configs/quick.yaml", ["benchmark_stop_dominated=maybe", "epochs=1"])
    assert caught.value.source == "configs/quick.yaml with --set benchmark_stop_dominated"
    assert caught.value.problems[0].startswith("benchmark_stop_dominated: ")


def test_fine_tune_epochs_per_level_must_name_exactly_the_levels() -> None:
    levels = {"pruning_levels": [0.0, 0.5, 0.7]}
    cfg = build_config({**levels, "fine_tune_epochs": {0.0: 1, 0.5: 1, 0.7: 3}})
    assert cfg.fine_tune_epochs == {0.0: 1, 0.5: 1, 0.7: 3}
    assert problems({**levels, "fine_tune_epochs": {0.0: 1, 0.5: 1}}) == [
        "fine_tune_epochs: no entry for pruning level 0.7; give every level of pruning_levels "
        "[0.0, 0.5, 0.7] its epochs (e.g. {0.7: 1}), or one number"
    ]
    assert problems({**levels, "fine_tune_epochs": {0.0: 1, 0.5: 1, 0.7: 1, 0.9: 2}}) == [
        "fine_tune_epochs: 0.9 is not one of pruning_levels [0.0, 0.5, 0.7]; key the mapping "
        "by those levels"
    ]
    optuna = {"strategy": "optuna"}
    search = {"fine_tune_epochs": {0.0: 1}, "pruning_levels": [0.0], "search": optuna}
    assert problems(search)[0].startswith("fine_tune_epochs: a per-level mapping needs")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"recovery": {"distillation": False, "temperature": 3.0}}, "recovery.temperature: only"),
        (
            {"recovery": {"steps": 2}, "pruning_scope": "global", "fine_tune_epochs": 1},
            "recovery.steps: 2 needs `pruning_scope: uniform`",
        ),
        (
            {"recovery": {"steps": 2}, "channel_multiple": 8, "fine_tune_epochs": 1},
            "recovery.steps: 2 needs `channel_multiple: 1`",
        ),
        ({"recovery": {"steps": 2}, "fine_tune_epochs": 0}, "recovery.steps: does nothing"),
        (
            {
                "recovery": {"early_stop_patience": 2},
                "fine_tune_epochs": 1,
                "search": {"strategy": "optuna"},
            },
            "recovery.early_stop_patience: needs `search.strategy: grid`",
        ),
        ({"recovery": {"steps": 0}}, "recovery.steps"),
        ({"recovery": {"teacher": "big"}}, "recovery.teacher: unknown key"),
    ],
)
def test_recovery_settings_that_cannot_work_are_refused(raw, message) -> None:
    assert any(message in p for p in problems(raw)), problems(raw)


def test_a_dotted_set_changes_one_key_of_a_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("recovery: {distillation: false}\nfine_tune_epochs: 1\nmodel: SmallCNN\n")
    cfg = load_config(path, ["recovery.steps=2", "model.kwargs={width: 8}"])
    assert cfg.recovery.steps == 2
    assert cfg.recovery.distillation is False  # kept from the file
    assert cfg.model.name == "SmallCNN"
    assert cfg.model.kwargs == {"width": 8}
    with pytest.raises(ConfigError, match="recovery.stepz: unknown key"):
        load_config(path, ["recovery.stepz=2"])


def test_a_number_or_mapping_key_reports_the_branch_it_was_written_as() -> None:
    assert [p.split(", got")[0] for p in problems({"fine_tune_epochs": -1})] == [
        "fine_tune_epochs: Input should be greater than or equal to 0"
    ]
    levels = {"pruning_levels": [0.0, 0.5]}
    bad_entry = problems({**levels, "fine_tune_epochs": {0.0: 1, 0.5: "x"}})
    assert [p.split(", got")[0] for p in bad_entry] == [
        "fine_tune_epochs.0.5: Input should be a valid integer"
    ]

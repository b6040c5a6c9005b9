"""Recipes as data: flags generated from config dataclasses (help from the field comments, every
default shown), and the finetune recipe's defaults are the measured recipe's."""
import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from groot_kit.recipes.config_cli import add_config_arguments, config_from_args, field_comments


@dataclass
class Inner:
    embodiment: str = "so100"        # which robot
    weight: float = 1.0              # its share


@dataclass
class Outer:
    steps: int = 100                 # training steps
    lr: float = 1e-3                 # learning rate
    base: str | None = "ckpt"        # base folder (none: random;
                                     # a second comment line continues the help)
    demos: list[int] = field(default_factory=lambda: [10, 20])   # demo counts
    merged: bool = True              # also write the merged model
    task: Inner = field(default_factory=Inner)


def _parse(argv):
    p = argparse.ArgumentParser()
    add_config_arguments(p, Outer)
    return p, config_from_args(Outer, p.parse_args(argv))


def test_flags_types_and_help():
    assert field_comments(Outer)["lr"] == "learning rate"
    assert field_comments(Outer)["base"] == "base folder (none: random; a second comment line continues the help)"
    assert field_comments(Outer)["demos"] == "demo counts"
    p, cfg = _parse([])
    assert cfg == Outer()
    p, cfg = _parse(["--steps", "7", "--base", "none", "--demos", "1,2,3", "--no-merged", "--task-weight", "2.5"])
    assert (cfg.steps, cfg.base, cfg.demos, cfg.merged, cfg.task.weight) == (7, None, [1, 2, 3], False, 2.5)
    assert cfg.task.embodiment == "so100"
    text = p.format_help()
    assert "training steps (default: 100)" in text and "(default: 10,20)" in text and "--task-embodiment" in text
    with pytest.raises(SystemExit):
        _parse(["--steps", "many"])


def test_finetune_cli_defaults_are_the_recipes():
    from groot_kit.recipes.finetune import FinetuneConfig, add_arguments
    p = argparse.ArgumentParser()
    add_arguments(p)
    a = p.parse_args([])
    assert (a.rank, a.alpha, a.batch_size, a.steps, a.num_demos, a.num_cubes, a.eval_episodes) == (16, 32.0, 32, 1200,
                                                                                                 20, 1, 20)
    assert "(default: 16)" in p.format_help()
    cfg = config_from_args(FinetuneConfig, p.parse_args(["--init-from", "3", "--base-checkpoint", "none"]))
    assert cfg.init_from == 3 and cfg.base_checkpoint is None
    with pytest.raises(ValueError, match="steps=0"):
        dataclasses.replace(cfg, steps=0)
    with pytest.raises(ValueError, match="not a folder"):
        FinetuneConfig(base_checkpoint="/no/such/base").base_dir()

"""`groot-kit train` / `python -m groot_kit.train.run`: train a policy on LeRobot datasets.

    groot-kit train --dataset data_samples/so100_synthetic --preset tiny --max-steps 2000 --output-dir outputs/pre
    accelerate launch --multi_gpu --num_processes 2 -m groot_kit.train.run --dataset ...  (no CUDA: 2 CPU ranks, gloo)

`--dataset PATH[:WEIGHT]` may repeat (a mixture); each dataset's embodiment slot comes from its
meta/groot_kit.json (`embodiment_id`) or `--embodiment-id`. `--init-from` starts from a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from groot_kit.train.trainer import TrainConfig, Trainer


def build_datasets(specs: list[str], policy, embodiment_id: int | None = None,
                   tier_weights: dict[str, float] | None = None):
    """'path[:weight]' strings -> a GrootDataset or MixtureDataset, and the policy's processors.

    Datasets of the same embodiment share ONE set of normalisation stats, computed over all of their
    frames (so expert and teleop data of one robot are normalised alike); the modes come from the
    embodiment's embodiment.yaml when the robot is known. One processor per embodiment is stored
    in the policy, so the checkpoint carries it.
    """
    import numpy as np
    from groot_kit.data import GrootDataset, MixtureDataset, NormalizationStats, open_dataset
    from groot_kit.data.normalization import load_numeric
    from groot_kit.data.processor import GrootProcessor
    cfg = policy.config
    rows = []
    for spec in specs:
        path, _, w = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
        root = Path(path)
        info = open_dataset(root)
        meta = info.groot
        eid = embodiment_id if embodiment_id is not None else meta.get("embodiment_id")
        if eid is None:
            raise ValueError(f"{root / 'meta' / 'groot_kit.json'}: no embodiment_id; pass --embodiment-id or "
                             "write the dataset with one")
        rows.append((root, info, int(eid), str(meta.get("embodiment") or f"slot_{eid}"), float(w) if w else 1.0))
    stats = {}
    for name in dict.fromkeys(r[3] for r in rows):
        mine = [r for r in rows if r[3] == name]
        states, actions = zip(*(load_numeric(r[1]) for r in mine))
        cat = lambda xs: None if any(x is None for x in xs) else np.concatenate(xs)
        stats[name] = NormalizationStats.from_arrays(cat(states), cat(actions), mine[0][1].modality,
                                                     modes=_norm_modes(name))
    datasets = []
    for root, info, eid, name, _ in rows:
        ds = GrootDataset(info, embodiment_id=eid, stats=stats[name], image_size=cfg.vlm.vision.image_size,
                          max_views=cfg.vlm.num_views, horizon=cfg.action_head.action_horizon,
                          max_state_dim=cfg.action_head.max_state_dim, max_action_dim=cfg.action_head.max_action_dim)
        datasets.append(ds)
        policy.set_processor(GrootProcessor.from_dataset(ds))
    if len(datasets) == 1 and not tier_weights:
        return datasets[0]
    return MixtureDataset(datasets, [r[4] for r in rows], tier_weights)


def _norm_modes(embodiment: str) -> dict[str, str] | None:
    """Normalisation modes per key from embodiments/<name>/embodiment.yaml (None if unknown)."""
    try:
        from groot_kit.data.sim_data import norm_modes_for
        from groot_kit.embodiment import load_embodiment
        return norm_modes_for(load_embodiment(embodiment))
    except Exception:  # a dataset from a robot the kit has no folder for: min_max everywhere
        return None


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", action="append", required=True, help="PATH[:WEIGHT], repeatable")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--init-from", help="checkpoint folder to start from (groot_kit or NVIDIA layout)")
    p.add_argument("--embodiment-id", type=int)
    p.add_argument("--subtask-loss-weight", type=float, default=None, help="co-train System 2 sub-task text")
    p.add_argument("--tier-weights", type=json.loads, default=None, help='e.g. \'{"teleop": 1, "synthetic": 0.5}\'')
    for f in TrainConfig.__dataclass_fields__.values():
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=None, metavar="BOOL")
        elif f.type in ("int", int, "float", float, "str", str):
            typ = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            p.add_argument(flag, type=typ, default=None)


def train_from_args(args: argparse.Namespace) -> dict:
    import dataclasses
    from groot_kit.config import get_preset
    from groot_kit.model.policy import GrootPolicy
    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    if not args.init_from:  # from scratch, a frozen random System 2 would be useless: train everything
        overrides.setdefault("tune_llm", True)
        overrides.setdefault("tune_visual", True)
    cfg = TrainConfig(**overrides)
    import torch
    torch.manual_seed(cfg.seed)  # a fresh policy's initial weights depend on the seed only
    if args.init_from:
        policy = GrootPolicy.from_pretrained(args.init_from)
    else:
        pc = get_preset(args.preset)
        if args.subtask_loss_weight is not None:
            pc = dataclasses.replace(pc, subtask_loss_weight=args.subtask_loss_weight)
        policy = GrootPolicy(pc)
    if args.init_from and args.subtask_loss_weight is not None:
        policy.config.subtask_loss_weight = args.subtask_loss_weight
    dataset = build_datasets(args.dataset, policy, args.embodiment_id, args.tier_weights)
    trainer = Trainer(policy, dataset, cfg)
    history = trainer.train()
    final = Path(cfg.output_dir) / "final"
    if trainer.is_main:
        trainer.policy.save_pretrained(final)
    last = history[-1] if history else {}
    summary = {"output_dir": cfg.output_dir, "final_checkpoint": str(final), "steps": trainer.step,
               "final_loss": last.get("loss"), "trainable": trainer.trainable_counts}
    if trainer.is_main:
        print(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="groot-kit train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p)
    train_from_args(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

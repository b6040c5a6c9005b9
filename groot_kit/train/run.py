"""`groot-kit train` / `python -m groot_kit.train.run`: train a policy on LeRobot datasets.

    groot-kit train --dataset data_samples/so100_synthetic --preset tiny --max-steps 2000 --output-dir outputs/pre
    accelerate launch --multi_gpu --num_processes 2 -m groot_kit.train.run --dataset ...  (no CUDA: 2 CPU ranks, gloo)

`--dataset PATH[:WEIGHT]` may repeat (a mixture); each dataset's embodiment slot comes from its
meta/groot_kit.json (`embodiment_id`) or `--embodiment-id`. `--init-from` starts from a checkpoint.

Bring your own data (any GR00T/LeRobot v2.0, v2.1 or v3.0 folder, read unchanged) with a data config
choosing the keys, GR00T style; a robot the base has never seen takes a free embodiment slot (or
`--slot N`), initialised as `groot-kit finetune` does, optionally with LoRA:

    groot-kit train --dataset gr1_pick_place --init-from data_samples/checkpoints/tiny_base \
        --data-config gr1_arms_only --max-steps 500 --lora true --output-dir outputs/gr1
    groot-kit train ... --state-keys left_arm,right_arm,left_hand,right_hand --action-keys ... --video-keys ego_view
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from groot_kit.data.modality import SUBTASK_FEATURE
from groot_kit.train.trainer import TrainConfig, Trainer


def build_datasets(specs: list[str], policy, embodiment_id: int | None = None,
                   tier_weights: dict[str, float] | None = None, data_config=None, new_robot=None):
    """'path[:weight]' strings -> a GrootDataset or MixtureDataset, and the policy's processors.

    Datasets of the same embodiment share ONE set of normalisation stats, computed over all of their
    frames (so expert and teleop data of one robot are normalised alike); the modes come from the
    data config, else the embodiment's embodiment.yaml when the robot is known. One processor per
    embodiment (with the data config's key selection) is stored in the policy, so the checkpoint
    carries it. A robot the policy does not know gets the slot ``new_robot(name, info, preferred)``
    returns (its recorded slot when that one is free), initialised from the nearest known robot.
    """
    import numpy as np
    from groot_kit.data import GrootDataset, MixtureDataset, NormalizationStats, open_dataset
    from groot_kit.data.normalization import load_numeric
    from groot_kit.data.processor import GrootProcessor
    cfg = policy.config
    procs = policy.normalization.get("processors", {})
    rows = []
    for spec in specs:
        path, _, w = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
        root = Path(path)
        info = open_dataset(root, select=data_config)
        name = (data_config.embodiment if data_config is not None and data_config.embodiment else None) or info.embodiment
        eid = embodiment_id if embodiment_id is not None else info.groot.get("embodiment_id")
        if name in procs:  # the policy already knows this robot: its slot
            eid = procs[name]["embodiment_id"] if eid is None else eid
        elif new_robot is not None:  # a robot the base has never seen: a free slot (the recorded one if free)
            eid = new_robot(name, info, preferred=eid)
        if eid is None:
            raise ValueError(f"{root / 'meta' / 'groot_kit.json'}: no embodiment_id; pass --embodiment-id, or "
                             "--init-from BASE so the new robot takes a free slot of the base")
        rows.append((root, info, int(eid), str(name), float(w) if w else 1.0))
    stats = {}
    modes = data_config.norm_modes() if data_config is not None else {}
    for name in dict.fromkeys(r[3] for r in rows):
        mine = [r for r in rows if r[3] == name]
        states, actions = zip(*(load_numeric(r[1]) for r in mine))
        cat = lambda xs: None if any(x is None for x in xs) else np.concatenate(xs)
        stats[name] = NormalizationStats.from_arrays(cat(states), cat(actions), mine[0][1].modality,
                                                     modes={**(_norm_modes(name) or {}), **modes})
    datasets = []
    for root, info, eid, name, _ in rows:
        ds = GrootDataset(info, embodiment_id=eid, stats=stats[name], image_size=cfg.vlm.vision.image_size,
                          max_views=cfg.vlm.num_views, horizon=cfg.action_head.action_horizon,
                          max_state_dim=cfg.action_head.max_state_dim, max_action_dim=cfg.action_head.max_action_dim)
        datasets.append(ds)
        proc = GrootProcessor.from_dataset(ds)
        proc.embodiment = name  # foreign data: saved under the robot's name, which eval/serve look up
        policy.set_processor(proc)
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
    g = p.add_argument_group("data config (which keys the policy uses, GR00T style)")
    g.add_argument("--data-config", help="YAML file or shipped name (gr1_arms_only, so100, so101_bimanual, kit_*)")
    g.add_argument("--state-keys", help="ordered state keys, e.g. left_arm,right_arm,left_hand,right_hand")
    g.add_argument("--action-keys", help="ordered action keys")
    g.add_argument("--video-keys", help="cameras, e.g. ego_view ('' for none)")
    g.add_argument("--language-key", help="annotation column with the instruction, e.g. "
                   "annotation.human.action.task_description ('task': the episode task)")
    g = p.add_argument_group("a new robot (dataset only, no MuJoCo model) on a base checkpoint")
    g.add_argument("--slot", type=int, default=None, help="embodiment slot for it (default: a free one)")
    g.add_argument("--slot-init", default="nearest", help="new slot's start: nearest, mean, random, a robot or slot")
    g.add_argument("--lora", action="store_true", help="train peft LoRA adapters + the new slot only")
    g.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (the finetune recipe's default)")
    g.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA alpha (the finetune recipe's default)")
    for f in TrainConfig.__dataclass_fields__.values():
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=None, metavar="BOOL")
        elif f.type in ("int", int, "float", float, "str", str):
            typ = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            p.add_argument(flag, type=typ, default=None)


def data_config_from_args(args: argparse.Namespace):
    """--data-config file/name, overridden field by field by --state-keys/--action-keys/... (None if none)."""
    from groot_kit.data.data_config import DataConfig
    dc = DataConfig.load(args.data_config) if getattr(args, "data_config", None) else DataConfig(source="command line")
    dc = dc.with_overrides(state_keys=args.state_keys, action_keys=args.action_keys, video_keys=args.video_keys,
                           language_key=args.language_key)
    return None if dc.is_empty else dc


class NewRobot:
    """Gives a robot the base has never seen a free slot of the base, initialised like ``finetune`` does."""

    def __init__(self, policy, slot: int | None, init_from: str):
        self.policy, self.slot, self.init_from = policy, slot, init_from
        self.added: dict | None = None

    def __call__(self, name: str, info, preferred: int | None = None) -> int:
        from groot_kit.train import lora as L
        if self.added is not None:
            raise ValueError(f"--dataset: a second new robot ('{name}' after '{self.added['robot']}') in one run; "
                             "train one new robot at a time (or give its datasets meta/groot_kit.json slots)")
        if self.slot is None and preferred is not None and int(preferred) not in L.used_slots(self.policy):
            slot = L.choose_slot(self.policy, int(preferred))
        else:
            slot = L.choose_slot(self.policy, self.slot)
        init = int(self.init_from) if str(self.init_from).isdigit() else self.init_from
        src = L.init_embodiment_slot(self.policy, slot, init, new_modality=info.modality)
        m = info.modality
        self.added = {"robot": name, "slot": slot, "init_from": self.init_from, "init_sources": src,
                      "state": {k: s.dim for k, s in m.state.items()}, "action": {k: s.dim for k, s in m.action.items()},
                      "video": list(m.video), "language_key": m.language_key or "task", "dataset": str(info.source or info.root)}
        return slot


def train_from_args(args: argparse.Namespace) -> dict:
    import dataclasses
    from groot_kit.config import get_preset
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train import lora as L
    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    if not args.init_from:  # from scratch, a frozen random System 2 would be useless: train everything
        overrides.setdefault("tune_llm", True)
        overrides.setdefault("tune_visual", True)
    import torch
    torch.manual_seed(overrides.get("seed", 0))  # a fresh policy's initial weights depend on the seed only
    if args.init_from:
        policy = GrootPolicy.from_pretrained(args.init_from)
    else:
        pc = get_preset(args.preset)
        if args.subtask_loss_weight is not None:
            pc = dataclasses.replace(pc, subtask_loss_weight=args.subtask_loss_weight)
        policy = GrootPolicy(pc)
    if args.init_from and args.subtask_loss_weight is not None:
        policy.config.subtask_loss_weight = args.subtask_loss_weight
    dc = data_config_from_args(args)
    new = NewRobot(policy, getattr(args, "slot", None), getattr(args, "slot_init", "nearest")) if args.init_from else None
    dataset = build_datasets(args.dataset, policy, args.embodiment_id, args.tier_weights, dc, new)
    added = new.added if new is not None else None
    lora = bool(getattr(args, "lora", False))
    if lora and added is None:
        raise ValueError("--lora trains a new robot's slot + adapters; every --dataset here is a robot the policy "
                         "already has a slot for (use plain training, or `groot-kit finetune` for a sim arm)")
    if added is not None:  # other robots' slices stay bit-identical (see groot_kit/train/lora.py)
        overrides.setdefault("weight_decay", 0.0)
    lcfg = L.apply_lora(policy, args.lora_rank, args.lora_alpha) if lora else None
    sub_w = policy.config.subtask_loss_weight  # a new robot's data without sub-task labels: nothing to co-train
    if added is not None and not any(SUBTASK_FEATURE in d.info.features for d in getattr(dataset, "datasets", [dataset])):
        policy.config.subtask_loss_weight = 0.0
    cfg = TrainConfig(**overrides)
    trainer = Trainer(policy, dataset, cfg)
    mask, counts = None, trainer.trainable_counts
    if added is not None:
        mask, c = L.mark_trainable(policy, added["slot"]) if lora else (L.SlotGradientMask(policy, added["slot"]), None)
        counts = c or counts
    try:
        history = trainer.train()
    finally:
        policy.config.subtask_loss_weight = sub_w
        if mask is not None:
            mask.remove()
    final = Path(cfg.output_dir) / "final"
    if trainer.is_main:
        policy = trainer.policy
        if lora:
            L.save_adapters(policy, Path(cfg.output_dir) / "adapter", added["slot"], lcfg,
                            base_checkpoint=str(args.init_from), embodiment=added["robot"], extra=added)
            policy = L.merge_lora(policy)
        policy.save_pretrained(final)
        write_readme(final, args, added, dc, lora)
    last = history[-1] if history else {}
    summary = {"output_dir": cfg.output_dir, "final_checkpoint": str(final), "steps": trainer.step,
               "final_loss": last.get("loss"), "trainable": counts, "new_robot": added}
    if trainer.is_main:
        print(json.dumps(summary, default=str))
    return summary


def write_readme(final: Path, args, added: dict | None, dc, lora: bool) -> None:
    """The checkpoint's README: what it was trained from, and for a new robot its slot, keys and dims."""
    lines = [f"# {final.parent.name}", "", f"`groot-kit train` on {', '.join(args.dataset)}"
             + (f", from `{args.init_from}`" if args.init_from else " from scratch") + "."]
    if dc is not None:
        lines += ["", f"Data config ({dc.source}): " + json.dumps(dc.to_dict())]
    if added is not None:
        a = added
        dims = lambda d: ", ".join(f"{k} ({n})" for k, n in d.items()) + f" = {sum(d.values())} dims"
        lines += ["", f"## New robot `{a['robot']}`", "",
                  f"- embodiment slot: {a['slot']} (initialised from {a['init_from']}: slots {a['init_sources']})",
                  f"- state keys: {dims(a['state'])}", f"- action keys: {dims(a['action'])}",
                  f"- cameras: {', '.join(a['video']) or '(none)'}; instruction: {a['language_key']}",
                  f"- training: {'peft LoRA (adapters in ../adapter) + the slot, merged here' if lora else 'full'}",
                  f"- processor: `policy.get_processor('{a['robot']}')` (keys, normalisation stats, slot)"]
    (final / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="groot-kit train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p)
    train_from_args(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

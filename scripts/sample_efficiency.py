"""Sample efficiency on a NEW arm: pretrained base + LoRA (fresh embodiment slot) vs from scratch.

    python scripts/sample_efficiency.py                       # 10/20/50 demos, 20 eval episodes each
    python scripts/sample_efficiency.py --demos 10,20 --eval-episodes 10 --lora-steps 800
    python scripts/sample_efficiency.py --fast                # smoke run (random base, minutes)

For each demo count N the same N expert demos (the first N of one recording) train
  * "pretrained + LoRA": the tiny base checkpoint, new embodiment slot (copied from the nearest
    trained robot, so100 for this 5-DOF arm + gripper) trained
    fully + rank-r LoRA on the DiT attention, everything else frozen (groot_kit.train.finetune);
  * "scratch": the same architecture from random weights, every parameter trainable, same
    optimiser, same number of steps;
  * optionally "full" (--methods ...,full): the base with every parameter trainable (diagnostic).
Both are evaluated closed loop in MuJoCo on the same unseen scenes (seeds 100000+). Writes
benchmarks/results/sample_efficiency.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

BASE = "data_samples/checkpoints/tiny_base"
RESULTS = "benchmarks/results/sample_efficiency.json"


def train_scratch(base_config, ds, steps: int, lr: float, batch_size: int, seed: int, out_dir: Path,
                  init_checkpoint: str | None = None, init_from: str = "mean", image_shift: int = 0,
                  color_jitter: float = 0.0):
    """Every parameter trainable: from random weights, or (init_checkpoint) full fine-tuning of the base
    with the new slot mean-initialised (the "full" diagnostic row)."""
    import torch
    from groot_kit.data.processor import GrootProcessor
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train import lora as L
    from groot_kit.train.trainer import TrainConfig, Trainer
    torch.manual_seed(seed)
    if init_checkpoint:
        policy = GrootPolicy.from_pretrained(init_checkpoint)
        L.init_embodiment_slot(policy, ds.embodiment_id, init_from,
                               new_dims=(ds.modality.state_dim, ds.modality.action_dim))
    else:
        policy = GrootPolicy(base_config)
    policy.set_processor(GrootProcessor.from_dataset(ds))
    cfg = TrainConfig(output_dir=str(out_dir), max_steps=steps, batch_size=batch_size, learning_rate=lr,
                      tune_llm=True, tune_visual=True, tune_projector=True, tune_diffusion_model=True,
                      save_every=steps, keep_last=1, log_every=max(1, steps // 20), seed=seed, resume=True,
                      progress=False, image_shift=image_shift, color_jitter=color_jitter)
    tr = Trainer(policy, ds, cfg)
    hist = tr.train()
    return tr.policy.eval(), hist, tr.trainable_counts


def main(argv=None) -> int:
    import torch
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train import finetune as F
    from groot_kit.train import lora as L

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-checkpoint", default=BASE)
    p.add_argument("--demos", default="10,20,50")
    p.add_argument("--task", default="reach")
    p.add_argument("--num-cubes", type=int, default=1)
    p.add_argument("--lora-steps", type=int, default=1200)
    p.add_argument("--scratch-steps", type=int, default=None, help="default: same as --lora-steps")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--targets", default="dit")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default="outputs/sample_efficiency")
    p.add_argument("--results", default=RESULTS)
    p.add_argument("--methods", default="lora,scratch", help="any of lora, scratch, full (pretrained, all "
                   "parameters trained: a diagnostic of how much the base itself transfers)")
    p.add_argument("--init-from", default="nearest", help="new slot's start: mean, nearest, random, a robot name or slot")
    p.add_argument("--start-noise", type=float, default=0.3, help="joint noise (rad) on the demos' start pose")
    p.add_argument("--hold-seconds", type=float, default=0.0, help="demos keep the goal this long after success")
    p.add_argument("--image-shift", type=int, default=0, help="train-time random image shift (px), 0 = off")
    p.add_argument("--color-jitter", type=float, default=0.0, help="train-time brightness/contrast jitter")
    p.add_argument("--keep-scratch-from", default=None, metavar="RESULTS_JSON",
                   help="copy the scratch rows of an earlier sweep with the same settings instead of retraining "
                        "them (use with --methods lora after the base changed: scratch never reads the base)")
    p.add_argument("--fast", action="store_true", help="smoke run: random base if none, 2/4 demos, few steps")
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if a.fast:
        a.demos, a.lora_steps, a.eval_episodes = "2,4", 20, 2
        a.output_dir, a.results = a.output_dir + "_fast", None
    scratch_steps = a.scratch_steps or a.lora_steps
    counts = [int(x) for x in a.demos.split(",")]
    methods = a.methods.split(",")
    kept = kept_scratch_rows(a.keep_scratch_from, a, scratch_steps, counts) if a.keep_scratch_from else []
    if kept and "scratch" in methods:
        p.error("--keep-scratch-from and --methods ...scratch... both give the scratch rows: drop one")
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_ok = Path(a.base_checkpoint, "config.json").is_file()
    if not base_ok and not a.fast:
        print(f"no base checkpoint at {a.base_checkpoint}; run scripts/pretrain_tiny.py first (or --fast)")
        return 2
    base = GrootPolicy.from_pretrained(a.base_checkpoint) if base_ok else GrootPolicy("tiny")
    base_cfg = base.config
    spec = F.default_arm_spec()
    slot = L.choose_slot(base)
    emb = F.build_arm(spec, out / "embodiment" / spec.name, slot)
    t0 = time.perf_counter()
    demos = F.record_demos(emb.root, a.task, max(counts), out / "demos", image_size=base_cfg.vlm.vision.image_size,
                           seed=a.seed, num_cubes=a.num_cubes, start_noise=a.start_noise, hold_seconds=a.hold_seconds)
    print(f"demos: {demos}")
    rows = list(kept)
    results_path = Path(a.results) if a.results else None
    for n in counts:
        eps = list(range(n))
        for m in methods:
            t = time.perf_counter()
            run_dir = out / f"{m}_{n}"
            if m != "lora":  # no request stamp of its own: never continue a cell of an earlier sweep
                shutil.rmtree(run_dir, ignore_errors=True)
            if m == "lora":
                res = F.finetune(spec, num_demos=n, rank=a.rank, alpha=a.alpha, lr=a.lr, steps=a.lora_steps,
                                 targets=a.targets, seed=a.seed, output_dir=run_dir,
                                 base_checkpoint=a.base_checkpoint if base_ok else None, task=a.task,
                                 batch_size=a.batch_size, slot_id=slot, num_cubes=a.num_cubes,
                                 demos_dir=demos["path"], demo_episodes=eps, eval_episodes=a.eval_episodes,
                                 video_episodes=0, save_merged=False, init_from=a.init_from,
                                 start_noise=a.start_noise, hold_seconds=a.hold_seconds,
                                 image_shift=a.image_shift, color_jitter=a.color_jitter)
                sr, hist, trainable = res.success_rate, res.history, res.metrics["trainable"]
                steps = a.lora_steps
            else:
                ds = F.load_demo_dataset(demos["path"], emb.root, base, episodes=eps)
                init = a.base_checkpoint if (m == "full" and base_ok) else None
                pol, hist, trainable = train_scratch(base_cfg, ds, scratch_steps, a.lr, a.batch_size, a.seed,
                                                     run_dir / "train", init_checkpoint=init, init_from=a.init_from,
                                                     image_shift=a.image_shift, color_jitter=a.color_jitter)
                ev = F.evaluate_closed_loop(pol, emb.root, a.task, a.eval_episodes, seed=a.seed, video_episodes=0,
                                            num_cubes=a.num_cubes)
                sr, steps = ev["success_rate"], scratch_steps
            row = {"method": m, "demos": n, "success_rate": sr, "eval_episodes": a.eval_episodes, "steps": steps,
                   "final_loss": hist[-1]["loss"] if hist else None, "trainable": trainable,
                   "seconds": round(time.perf_counter() - t, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            summary = {
                "experiment": "sample efficiency on a new arm: pretrained + LoRA vs scratch",
                "arm": dataclasses.asdict(spec), "slot_id": slot, "task": a.task, "num_cubes": a.num_cubes,
                "base_checkpoint": a.base_checkpoint if base_ok else None, "rank": a.rank, "alpha": a.alpha,
                "lr": a.lr, "batch_size": a.batch_size, "init_from": a.init_from, "start_noise": a.start_noise,
                "image_shift": a.image_shift, "color_jitter": a.color_jitter,
                "hold_seconds": a.hold_seconds, "targets": a.targets, "lora_steps": a.lora_steps,
                "scratch_steps": scratch_steps, "seed": a.seed, "eval_seeds": f"{F.EVAL_SEED_OFFSET + 1000 * a.seed}+",
                "demo_recording": demos, "rows": rows, "markdown": table(rows),
                "scratch_kept_from": a.keep_scratch_from,
                "base_reference": base_reference(a.base_checkpoint if base_ok else None),
                "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                            "torch_threads": torch.get_num_threads()},
                "total_seconds": round(time.perf_counter() - t0, 1),
            }
            if results_path is not None:  # rewritten after every run: a killed sweep keeps its rows
                results_path.parent.mkdir(parents=True, exist_ok=True)
                results_path.write_text(json.dumps(summary, indent=2, default=str))
    print(table(rows))
    return 0


def kept_scratch_rows(path: str, a, scratch_steps: int, counts: list[int]) -> list[dict]:
    """The scratch rows of an earlier results file, if it was run with the same settings."""
    from groot_kit.train import finetune as F
    f = Path(path)
    if not f.is_file():
        raise SystemExit(f"--keep-scratch-from {f}: no such file. Fix: give an earlier sample_efficiency results "
                         "JSON, or drop the flag and add scratch to --methods")
    old = json.loads(f.read_text())
    # the settings a scratch row depends on (not the base: scratch starts from random weights)
    now = {"arm": dataclasses.asdict(F.default_arm_spec()), "task": a.task, "num_cubes": a.num_cubes, "seed": a.seed,
           "scratch_steps": scratch_steps, "lr": a.lr, "batch_size": a.batch_size, "start_noise": a.start_noise,
           "hold_seconds": a.hold_seconds, "image_shift": a.image_shift, "color_jitter": a.color_jitter}
    now = json.loads(json.dumps(now))  # tuples -> lists, as in the file
    diff = [k for k in now if old.get(k) != now[k]]
    if diff:
        raise SystemExit(f"--keep-scratch-from {f}: its {', '.join(diff)} differ from this sweep's "
                         f"({', '.join(f'{k}={old.get(k)!r} vs {now[k]!r}' for k in diff)}). Fix: rerun scratch "
                         "(--methods lora,scratch) or match those settings")
    rows = [{**r, "kept_from": str(f)} for r in old.get("rows", []) if r["method"] == "scratch" and r["demos"] in counts]
    missing = sorted(set(counts) - {r["demos"] for r in rows})
    if missing:
        raise SystemExit(f"--keep-scratch-from {f} has no scratch row for {missing} demos. Fix: add scratch to "
                         "--methods, or sweep only the demo counts it has")
    return rows


def base_reference(base_checkpoint) -> dict | None:
    """The base checkpoint's own closed-loop success on its pretraining embodiments (the ceiling a
    fine-tune of that base can be expected to approach), from benchmarks/results/pretrain_tiny.json."""
    f = Path("benchmarks/results/pretrain_tiny.json")
    if not base_checkpoint or not f.is_file():
        return None
    r = json.loads(f.read_text())
    cl = r.get("closed_loop", {})
    return {"source": str(f), "mean_success_rate": r.get("mean_success_rate"),
            "per_embodiment": {k: v.get("success_rate") for k, v in cl.items() if isinstance(v, dict)},
            "train_steps": (r.get("train") or {}).get("steps") if isinstance(r.get("train"), dict) else None}


def table(rows) -> str:
    counts = sorted({r["demos"] for r in rows})
    methods = [m for m in ("lora", "lora_stage1_base", "full", "scratch") if any(r["method"] == m for r in rows)]
    name = {"lora": "pretrained + LoRA (new slot)", "lora_stage1_base": "earlier, weaker base + LoRA",
            "full": "pretrained, full fine-tune", "scratch": "from scratch"}
    lines = ["| method | " + " | ".join(f"{n} demos" for n in counts) + " |",
             "|---|" + "---|" * len(counts)]
    for m in methods:
        cells = []
        for n in counts:
            r = [x for x in rows if x["method"] == m and x["demos"] == n]
            cells.append(f"{100 * r[0]['success_rate']:.0f}% ({r[0]['eval_episodes']} ep)" if r else "-")
        lines.append(f"| {name[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Recipe: sample efficiency on a NEW arm, pretrained base + LoRA (fresh embodiment slot) vs scratch.

    python scripts/sample_efficiency.py                          # 10/20/50 demos, 20 eval episodes each
    python scripts/sample_efficiency.py --demos 10,20 --eval-episodes 10 --steps 800 --num-joints 6
    python scripts/sample_efficiency.py --fast                   # smoke run (random base if none, minutes)

For each demo count N, the same N expert demos (the first N of one recording) train
  * "lora": the base checkpoint, a new embodiment slot (copied from the nearest trained robot) trained
    fully + rank-r LoRA on the DiT attention, everything else frozen (the finetune recipe);
  * "scratch": the same architecture from random weights, every parameter trainable, same optimiser
    and number of steps;
  * "full" (diagnostic): the base with every parameter trainable.
All are evaluated closed loop by groot_kit.eval on the same unseen scenes (tuning seeds 100000 +
1000 * seed; `--eval-seed 300000` or above for a figure you report). Every flag of the finetune recipe applies (arm, LoRA, training); the results JSON is
rewritten after every cell, so a killed sweep keeps its rows.
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
from dataclasses import dataclass, field
from pathlib import Path

from groot_kit.paths import REPO_ROOT, resolve_repo_path
from groot_kit.recipes.finetune import FinetuneConfig
from groot_kit.recipes.finetune import run as run_finetune

METHODS = ("lora", "scratch", "full")


def _sweep_finetune_defaults() -> FinetuneConfig:
    return FinetuneConfig(output_dir="outputs/sample_efficiency", video_episodes=0, save_merged=False)


@dataclass
class SampleEfficiencyConfig:
    finetune: FinetuneConfig = field(default_factory=_sweep_finetune_defaults,
                                     metadata={"flatten": True, "skip": ("demos_dir", "demo_episodes", "num_demos",
                                                                         "video_episodes", "save_merged", "progress")})
    demos: list[int] = field(default_factory=lambda: [10, 20, 50])   # demo counts, one cell each
    methods: list[str] = field(default_factory=lambda: ["lora", "scratch"])  # any of lora, scratch, full
    scratch_steps: int | None = None          # steps of the scratch/full cells (none: the finetune steps)
    keep_scratch_from: str | None = None      # reuse the scratch rows of this earlier results JSON (settings must match)
    results: str | None = "benchmarks/results/sample_efficiency.json"   # rewritten after every cell (none: no file)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"sample_efficiency: unknown method(s) {bad}. Fix: use any of {list(METHODS)}")
        if not self.demos or min(self.demos) < 1:
            raise ValueError(f"sample_efficiency: demos={self.demos} must be positive counts, e.g. 10,20,50")
        if self.keep_scratch_from and "scratch" in self.methods:
            raise ValueError("sample_efficiency: keep_scratch_from and methods=...scratch... both give the scratch "
                             "rows. Fix: drop one")

    @property
    def scratch_steps_(self) -> int:
        return self.scratch_steps or self.finetune.steps

    @classmethod
    def fast(cls, **kw) -> "SampleEfficiencyConfig":
        """Smoke run: 2/4 demos, 20 steps, 2 episodes, no results file (random base when none is shipped)."""
        ft = dataclasses.replace(_sweep_finetune_defaults(), steps=20, eval_episodes=2,
                                 output_dir="outputs/sample_efficiency_fast")
        return cls(**{"finetune": ft, "demos": [2, 4], "results": None, **kw})


def train_scratch(base_config, ds, steps: int, ft: FinetuneConfig, out_dir: Path, init_checkpoint: str | None = None):
    """Every parameter trainable: from random weights, or (init_checkpoint) full fine-tuning of the base
    with the new slot initialised like the LoRA cells (the "full" diagnostic row)."""
    import torch
    from groot_kit.data.processor import GrootProcessor
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train import lora as L
    from groot_kit.train.trainer import TrainConfig, Trainer
    torch.manual_seed(ft.seed)
    if init_checkpoint:
        policy = GrootPolicy.from_pretrained(init_checkpoint)
        L.init_embodiment_slot(policy, ds.embodiment_id, ft.init_from, new_modality=ds.modality)
    else:
        policy = GrootPolicy(base_config)
    policy.set_processor(GrootProcessor.from_dataset(ds))
    cfg = TrainConfig(output_dir=str(out_dir), max_steps=steps, batch_size=ft.batch_size, learning_rate=ft.lr,
                      tune_llm=True, tune_visual=True, tune_projector=True, tune_diffusion_model=True,
                      save_every=steps, keep_last=1, log_every=max(1, steps // 20), seed=ft.seed, resume=True,
                      progress=False, image_shift=ft.image_shift, color_jitter=ft.color_jitter)
    tr = Trainer(policy, ds, cfg)
    hist = tr.train()
    return tr.policy.eval(), hist, tr.trainable_counts


def scratch_settings(cfg: SampleEfficiencyConfig) -> dict:
    """The settings a scratch row depends on (not the base: scratch starts from random weights)."""
    ft = cfg.finetune
    now = {"arm": dataclasses.asdict(ft.arm()), "task": ft.task, "num_cubes": ft.num_cubes, "seed": ft.seed,
           "scratch_steps": cfg.scratch_steps_, "lr": ft.lr, "batch_size": ft.batch_size,
           "start_noise": ft.start_noise, "hold_seconds": ft.hold_seconds, "image_shift": ft.image_shift,
           "color_jitter": ft.color_jitter, "eval_seed": ft.eval_start_seed()}
    return json.loads(json.dumps(now))  # tuples -> lists, as in the file


def kept_scratch_rows(cfg: SampleEfficiencyConfig) -> list[dict]:
    """The scratch rows of `cfg.keep_scratch_from`, if that sweep ran with the same scratch settings."""
    f = Path(cfg.keep_scratch_from)
    if not f.is_file():
        raise ValueError(f"keep_scratch_from {f}: no such file. Fix: give an earlier sample_efficiency results "
                         "JSON, or drop the flag and add scratch to --methods")
    old, now = json.loads(f.read_text()), scratch_settings(cfg)
    if "eval_seed" not in old and isinstance(old.get("seed"), int):   # files from before --eval-seed: the default rule
        from groot_kit.eval import finetune_eval_seed
        old["eval_seed"] = finetune_eval_seed(old["seed"])
    diff = [k for k in now if old.get(k) != now[k]]
    if diff:
        raise ValueError(f"keep_scratch_from {f}: its {', '.join(diff)} differ from this sweep's "
                         f"({', '.join(f'{k}={old.get(k)!r} vs {now[k]!r}' for k in diff)}). Fix: rerun scratch "
                         "(--methods lora,scratch) or match those settings")
    rows = [{**r, "kept_from": str(f)} for r in old.get("rows", []) if r["method"] == "scratch" and r["demos"] in cfg.demos]
    missing = sorted(set(cfg.demos) - {r["demos"] for r in rows})
    if missing:
        raise ValueError(f"keep_scratch_from {f} has no scratch row for {missing} demos. Fix: add scratch to "
                         "--methods, or sweep only the demo counts it has")
    return rows


def run(cfg: SampleEfficiencyConfig, log=print, command: str | None = None) -> dict:
    """The sweep; returns (and writes to cfg.results) the summary with one row per cell."""
    import torch
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train import finetune as F
    from groot_kit.train import lora as L
    ft = cfg.finetune
    kept = kept_scratch_rows(cfg) if cfg.keep_scratch_from else []
    out = Path(ft.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_dir = ft.base_dir()
    base = GrootPolicy.from_pretrained(base_dir) if base_dir else GrootPolicy(ft.preset)
    spec, slot = ft.arm(), L.choose_slot(base, ft.slot_id)
    emb = F.build_arm(spec, out / "embodiment" / spec.name, slot)
    t0 = time.perf_counter()
    demos = F.record_demos(emb.root, ft.task, max(cfg.demos), out / "demos", image_size=base.config.vlm.vision.image_size,
                           seed=ft.seed, num_cubes=ft.num_cubes, start_noise=ft.start_noise,
                           hold_seconds=ft.hold_seconds)
    log(f"demos: {demos}")
    rows = list(kept)
    summary: dict = {}
    for n in cfg.demos:
        for m in cfg.methods:
            t = time.perf_counter()
            row = _cell(cfg, m, n, base, base_dir, emb.root, slot, demos["path"], out / f"{m}_{n}")
            rows.append({**row, "seconds": round(time.perf_counter() - t, 1)})
            log(json.dumps(rows[-1]))
            summary = _summary(cfg, spec, slot, base_dir, demos, rows, t0, torch.get_num_threads(), command)
            if cfg.results:   # rewritten after every cell: a killed sweep keeps its rows
                Path(cfg.results).parent.mkdir(parents=True, exist_ok=True)
                Path(cfg.results).write_text(json.dumps(summary, indent=2, default=str))
    log(table(rows))
    return summary


def _cell(cfg: SampleEfficiencyConfig, method: str, n: int, base, base_dir, emb_root, slot: int, demos_path,
          run_dir: Path) -> dict:
    """One (method, demo count) cell: train, evaluate closed loop -> row."""
    from groot_kit.eval import evaluate_closed_loop
    from groot_kit.train import finetune as F
    ft = cfg.finetune
    if method == "lora":
        c = dataclasses.replace(ft, num_demos=n, output_dir=str(run_dir), slot_id=slot, demos_dir=str(demos_path),
                                demo_episodes=list(range(n)))
        res = run_finetune(c)
        return {"method": method, "demos": n, "success_rate": res.success_rate, "successes": res.eval["successes"],
                "eval_episodes": ft.eval_episodes, "steps": ft.steps, "final_loss": res.metrics["final_loss"],
                "trainable": res.metrics["trainable"]}
    shutil.rmtree(run_dir, ignore_errors=True)   # no request stamp of its own: never continue an earlier sweep's cell
    ds = F.load_demo_dataset(demos_path, emb_root, base, episodes=list(range(n)))
    init = base_dir if method == "full" else None
    pol, hist, trainable = train_scratch(base.config, ds, cfg.scratch_steps_, ft, run_dir / "train", init)
    ev = evaluate_closed_loop(pol, emb_root, ft.task, ft.eval_episodes, seed=ft.eval_start_seed(),
                              replan_every=ft.replan_every, num_cubes=ft.num_cubes)
    return {"method": method, "demos": n, "success_rate": ev["success_rate"], "successes": ev["successes"],
            "eval_episodes": ft.eval_episodes, "steps": cfg.scratch_steps_,
            "final_loss": hist[-1]["loss"] if hist else None, "trainable": trainable}


def _summary(cfg, spec, slot, base_dir, demos, rows, t0, threads, command=None) -> dict:
    ft = cfg.finetune
    return {"experiment": "sample efficiency on a new arm: pretrained + LoRA vs scratch", "command": command,
            **scratch_settings(cfg), "arm": dataclasses.asdict(spec), "slot_id": slot,
            "base_checkpoint": base_dir, "rank": ft.rank, "alpha": ft.alpha, "init_from": ft.init_from,
            "targets": ft.targets, "lora_steps": ft.steps, "eval_seeds": f"{ft.eval_start_seed()}+",
            "demo_recording": demos, "rows": rows, "markdown": table(rows), "scratch_kept_from": cfg.keep_scratch_from,
            "base_reference": base_reference(base_dir),
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch_threads": threads},
            "total_seconds": round(time.perf_counter() - t0, 1)}


def base_reference(base_checkpoint) -> dict | None:
    """The base checkpoint's own closed-loop success on its pretraining robots (the ceiling a fine-tune of
    that base can be expected to approach), from the pretraining results file that wrote that checkpoint
    (benchmarks/results/pretrain*.json whose "checkpoint" is it). None when no such file exists."""
    if not base_checkpoint:
        return None
    want = resolve_repo_path(base_checkpoint).resolve()
    for f in sorted((REPO_ROOT / "benchmarks" / "results").glob("pretrain*.json")):
        try:
            r = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        ck = r.get("checkpoint") if isinstance(r, dict) else None
        if not ck or resolve_repo_path(ck).resolve() != want:
            continue
        cl = r.get("closed_loop", {})
        return {"source": str(f.relative_to(REPO_ROOT)), "mean_success_rate": r.get("mean_success_rate"),
                "per_embodiment": {k: v.get("success_rate") for k, v in cl.items() if isinstance(v, dict)},
                "train_steps": r["train"].get("steps") if isinstance(r.get("train"), dict) else None}
    return None


def table(rows) -> str:
    counts = sorted({r["demos"] for r in rows})
    methods = [m for m in ("lora", "lora_stage1_base", "full", "scratch") if any(r["method"] == m for r in rows)]
    name = {"lora": "pretrained + LoRA (new slot)", "lora_stage1_base": "earlier, weaker base + LoRA",
            "full": "pretrained, full fine-tune", "scratch": "from scratch"}
    lines = ["| method | " + " | ".join(f"{n} demos" for n in counts) + " |", "|---|" + "---|" * len(counts)]
    for m in methods:
        cells = []
        for n in counts:
            r = [x for x in rows if x["method"] == m and x["demos"] == n]
            cells.append(f"{100 * r[0]['success_rate']:.0f}% ({r[0]['eval_episodes']} ep)" if r else "-")
        lines.append(f"| {name[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch
    from groot_kit.recipes.config_cli import add_config_arguments, command_line, config_from_args
    p = argparse.ArgumentParser(prog="sample_efficiency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="smoke run: 2/4 demos, few steps, no results file")
    add_config_arguments(p, SampleEfficiencyConfig)
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    base = SampleEfficiencyConfig.fast() if a.fast else SampleEfficiencyConfig()
    given = argparse.Namespace(**{k: v for k, v in vars(a).items() if p.get_default(k) != v})
    try:
        cfg = config_from_args(SampleEfficiencyConfig, given, base=base)
        ft = cfg.finetune
        if a.fast and ft.base_checkpoint and not resolve_repo_path(ft.base_checkpoint).is_dir():
            cfg = dataclasses.replace(cfg, finetune=dataclasses.replace(ft, base_checkpoint=None))  # random base
        run(cfg, command=command_line("scripts/sample_efficiency.py", argv))
    except ValueError as e:
        print(f"sample_efficiency: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

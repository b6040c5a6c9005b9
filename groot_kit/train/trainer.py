"""Training loop on `accelerate`: AdamW (beta1 0.95; the fused kernel, `train.optim`), cosine schedule
with warm-up, bf16 on GPU, GR00T's tune flags, System 2 / System 1 co-training, metrics JSON, atomic
resumable checkpoints.

    trainer = Trainer(policy, dataset, TrainConfig(output_dir="outputs/run", max_steps=2000))
    history = trainer.train()          # resumes from output_dir/checkpoints/ when one is there

Checkpoint folder (written to a temp folder, then renamed, so a kill never leaves half a one):
    checkpoints/step_000200/policy/            save_pretrained: weights, config, tokenizer, stats
    checkpoints/step_000200/optimizer.pt       optimizer state (tensors only; weights_only load)
    checkpoints/step_000200/trainer_state.json step, scheduler, data position, RNG states, config
Multi-process: `accelerate launch --multi_gpu --num_processes 2 ...` (on a machine without CUDA this
starts two CPU ranks that run DDP over gloo); each rank
reads its own share of the same global sample stream.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from groot_kit.fileio import atomic_directory
from groot_kit.model.policy import CheckpointError, GrootPolicy
from groot_kit.train.augment import augment_images
from groot_kit.train.time_budget import TimeBudget
from groot_kit.train.optim import build_adamw

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainConfig:
    output_dir: str = "outputs/train"
    max_steps: int = 2000
    batch_size: int = 16              # per process
    learning_rate: float = 3e-4
    weight_decay: float = 1e-5
    adam_beta1: float = 0.95          # GR00T's choice (not 0.9)
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    warmup_ratio: float = 0.05        # linear warm-up share of max_steps, then cosine to 0
    max_grad_norm: float = 1.0
    tune_llm: bool = False            # System 2 language model
    tune_visual: bool = False         # vision tower + connector
    tune_projector: bool = True       # embodiment encoders/decoders, positions, VL adapter, backbone.linear
    tune_diffusion_model: bool = True # the DiT
    mixed_precision: str = "auto"     # "auto": bf16 on CUDA, fp32 on CPU; or "no" / "bf16"
    save_every: int = 500
    keep_last: int = 2                # checkpoints kept on disk
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    resume: bool = True               # continue from the newest checkpoint in output_dir
    progress: bool = True             # tqdm progress bar on the main process
    cache_samples: bool = True        # keep decoded samples in RAM (small datasets, many epochs)
    image_shift: int = 0              # train-time random image shift in px (DrQ-style; 0 = off)
    color_jitter: float = 0.0         # train-time brightness/contrast jitter strength (0 = off)
    time_budget_minutes: float = 0.0  # > 0: fit training into this wall time (max_steps = the first guess)

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError("TrainConfig.max_steps must be >= 1")
        if self.time_budget_minutes < 0:
            raise ValueError("TrainConfig.time_budget_minutes must be >= 0 (0 = run exactly max_steps)")
        if self.batch_size < 1:
            raise ValueError("TrainConfig.batch_size must be >= 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("TrainConfig.warmup_ratio must be in [0, 1)")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError("TrainConfig.mixed_precision must be 'auto', 'no', 'bf16' or 'fp16'")
        if self.save_every < 1 or self.log_every < 1:
            raise ValueError("TrainConfig.save_every and log_every must be >= 1")
        if self.image_shift < 0 or not 0 <= self.color_jitter < 1:
            raise ValueError("TrainConfig.image_shift must be >= 0 px and color_jitter in [0, 1) (e.g. 4 and 0.1)")


# ------------------------------------------------------------------------------------ tune flags
def trainable_groups(policy: GrootPolicy) -> dict[str, list[nn.Parameter]]:
    """Parameters by GR00T tune flag."""
    eagle = policy.backbone.eagle
    ah = policy.action_head
    projector = [p for n, p in ah.named_parameters() if not n.startswith("model.")]
    projector += list(policy.backbone.linear.parameters())
    if hasattr(policy, "goal_head"):   # a training-only adapter on System 2's output
        projector += list(policy.goal_head.parameters())
    return {
        "tune_llm": list(eagle.language_model.parameters()),
        "tune_visual": list(eagle.vision_model.parameters()) + list(eagle.mlp1.parameters()),
        "tune_projector": projector,
        "tune_diffusion_model": list(ah.model.parameters()),
    }


def apply_tune_flags(policy: GrootPolicy, cfg: TrainConfig) -> dict[str, int]:
    """Set requires_grad per flag; returns trainable parameter counts per group."""
    counts = {}
    for flag, params in trainable_groups(policy).items():
        on = bool(getattr(cfg, flag))
        for p in params:
            p.requires_grad_(on)
        counts[flag] = sum(p.numel() for p in params) if on else 0
    return counts


def cosine_with_warmup(step: int, max_steps: int, warmup_ratio: float) -> float:
    warm = max(1, int(round(max_steps * warmup_ratio))) if warmup_ratio > 0 else 0
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, max_steps - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ------------------------------------------------------------------------------------ data
class ResumableSampler(torch.utils.data.Sampler[int]):
    """An endless, seeded stream of indices (uniform or weighted, epoch by epoch) that can start at
    any position without loading the skipped samples; rank r of W takes every W-th index."""

    def __init__(self, n: int, weights: np.ndarray | None = None, seed: int = 0, start: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.n, self.weights, self.seed = int(n), weights, int(seed)
        self.start, self.rank, self.world_size = int(start), int(rank), int(world_size)

    def _epoch(self, e: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + 1_000_003 * e)
        if self.weights is None:
            return torch.randperm(self.n, generator=g).tolist()
        w = torch.as_tensor(self.weights, dtype=torch.double)
        return torch.multinomial(w, self.n, replacement=True, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        pos = self.start  # position in the global stream
        while True:
            e, off = divmod(pos, self.n)
            order = self._epoch(e)
            for i in range(off, self.n):
                if (e * self.n + i) % self.world_size == self.rank:
                    yield order[i]
            pos = (e + 1) * self.n


class CachedDataset(torch.utils.data.Dataset):
    """Keeps each decoded sample in RAM after its first read (images stored as uint8). Counts reads
    and misses (in the process that reads: with DataLoader workers each worker has its own cache)."""

    def __init__(self, base):
        self.base, self.cache = base, {}
        self.reads = self.misses = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        self.reads += 1
        if i not in self.cache:
            self.misses += 1
            s = dict(self.base[i])
            s["pixel_values"] = (s["pixel_values"].clamp(0, 1) * 255).round().to(torch.uint8)
            self.cache[i] = s
        s = dict(self.cache[i])
        s["pixel_values"] = s["pixel_values"].float() / 255
        return s

    def sample_weights(self):
        return self.base.sample_weights() if hasattr(self.base, "sample_weights") else None


def _collate(samples):
    from groot_kit.data.dataset import collate
    return collate(samples)


# ------------------------------------------------------------------------------------ RNG
def _rng_state() -> dict:
    st = {"python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
          "numpy": np.random.get_state()[1].tolist(), "numpy_pos": int(np.random.get_state()[2]),
          "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        st["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return st


def _set_rng_state(st: dict) -> None:
    random.setstate((3, tuple(st["python"]), st["python_pos"]))
    np.random.set_state(("MT19937", np.asarray(st["numpy"], dtype=np.uint32), st["numpy_pos"], 0, 0.0))
    torch.set_rng_state(torch.tensor(st["torch"], dtype=torch.uint8))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in st["cuda"]])


# ------------------------------------------------------------------------------------ checkpoints
def list_checkpoints(output_dir: str | Path) -> list[Path]:
    d = Path(output_dir) / CHECKPOINT_DIR
    if not d.exists():
        return []
    return sorted((p for p in d.iterdir() if p.is_dir() and p.name.startswith("step_")), key=lambda p: p.name)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    cks = list_checkpoints(output_dir)
    return cks[-1] if cks else None


def validate_checkpoint(ck: Path) -> None:
    """Raise CheckpointError if a training checkpoint folder is incomplete or corrupt."""
    for name in ("policy/config.json", "policy/model.safetensors", "optimizer.pt", "trainer_state.json"):
        if not (ck / name).exists():
            raise CheckpointError(f"training checkpoint {ck} lacks {name}; delete the folder to resume from the "
                                  "previous checkpoint")
    try:
        json.loads((ck / "trainer_state.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{ck / 'trainer_state.json'} is corrupt ({e}); delete {ck} to resume from the "
                              "previous checkpoint") from e


# ------------------------------------------------------------------------------------ trainer
class Trainer:
    """Trains a GrootPolicy on a GrootDataset / MixtureDataset (anything yielding model batches)."""

    def __init__(self, policy: GrootPolicy, dataset, cfg: TrainConfig,
                 callbacks: list[Callable[[int, dict], None]] | None = None):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs
        self.cfg = cfg
        mp = cfg.mixed_precision
        if mp == "auto":
            mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
        self.accelerator = Accelerator(mixed_precision=mp, cpu=not torch.cuda.is_available(),
                                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)])
        self.policy = policy
        # a dataset already cached (the grounding pretext read it first) keeps its cache
        self.dataset = CachedDataset(dataset) if cfg.cache_samples and not isinstance(dataset, CachedDataset) else dataset
        self.callbacks = list(callbacks or [])
        self.budget = TimeBudget(cfg, cfg.time_budget_minutes) if cfg.time_budget_minutes > 0 else None
        self.output_dir = Path(cfg.output_dir)
        self.step = 0
        self.history: list[dict] = []
        self.trainable_counts = apply_tune_flags(policy, cfg)
        params = [p for p in policy.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters: turn on at least one tune_* flag (or add LoRA adapters)")
        self.optimizer = build_adamw(params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                     eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_with_warmup(s, cfg.max_steps, cfg.warmup_ratio))

    # -- state ---------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _unwrapped(self) -> GrootPolicy:
        return self.accelerator.unwrap_model(self.model)

    def save_checkpoint(self) -> Path | None:
        """Atomic: everything goes to a temp folder that is renamed into place."""
        self.accelerator.wait_for_everyone()
        final = self.output_dir / CHECKPOINT_DIR / f"step_{self.step:06d}"
        if self.is_main:
            with atomic_directory(final) as tmp:
                self._unwrapped().save_pretrained(tmp / "policy")
                torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
                state = {"step": self.step, "scheduler": self.scheduler.state_dict(),
                         "data_position": self.step * self.cfg.batch_size * self.accelerator.num_processes,
                         "rng": _rng_state(), "train_config": dataclasses.asdict(self.cfg),
                         "run": self._run_fingerprint(),
                         "world_size": self.accelerator.num_processes, "time": time.time()}
                (tmp / "trainer_state.json").write_text(json.dumps(state))
            for old in list_checkpoints(self.output_dir)[:-self.cfg.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return final

    # settings that may change between a run and its resumption (the time budget moves max_steps)
    _RESUME_FREE = ("output_dir", "max_steps", "resume", "progress", "save_every", "keep_last", "log_every",
                    "num_workers", "cache_samples", "time_budget_minutes")

    def _run_fingerprint(self) -> dict:
        """What a checkpoint must share with this run to be resumed by it: the training settings, the
        dataset size and which parameters train (names and shapes)."""
        import hashlib
        cfg = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in self._RESUME_FREE}
        names = ";".join(f"{n}:{tuple(p.shape)}" for n, p in self.policy.named_parameters() if p.requires_grad)
        return {"config": json.loads(json.dumps(cfg, default=str)), "dataset_frames": len(self.dataset),
                "trainable": hashlib.sha256(names.encode()).hexdigest()[:16]}

    def _resume(self) -> int:
        ck = latest_checkpoint(self.output_dir)
        if ck is None:
            return 0
        validate_checkpoint(ck)
        from groot_kit.model.policy import (
            load_safetensors_checked,
            load_state_dict_checked,
        )
        state = json.loads((ck / "trainer_state.json").read_text())
        saved, now = state.get("run"), self._run_fingerprint()
        if saved is not None and saved != now:  # older checkpoints carry no fingerprint: trusted
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise CheckpointError(f"{ck} was written by a different run (differs in: {', '.join(diff)}); resuming "
                                  f"it would continue someone else's training. Fix: delete {self.output_dir} (or "
                                  "use another output_dir), or set TrainConfig.resume=False to start over")
        weights = load_safetensors_checked(ck / "policy" / "model.safetensors")
        load_state_dict_checked(self.policy, weights, source=str(ck))
        try:
            opt_state = torch.load(ck / "optimizer.pt", map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{ck / 'optimizer.pt'} is corrupt ({e}); delete {ck} to resume from the "
                                  "previous checkpoint") from e
        self.optimizer.load_state_dict(opt_state)
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])
        self._truncate_metrics(self.step)
        return int(state["data_position"])

    def _truncate_metrics(self, step: int) -> None:
        """Drop metric lines logged after the checkpoint, so the curve continues without a fork."""
        f = self.output_dir / METRICS_FILE
        if self.is_main and f.exists():
            keep = [line for line in f.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
            f.write_text("".join(line + "\n" for line in keep))
            self.history = [json.loads(line) for line in keep]

    # -- loop ----------------------------------------------------------------------------------
    def train(self) -> list[dict]:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        position = self._resume() if cfg.resume else 0
        if not cfg.resume and self.is_main and (self.output_dir / METRICS_FILE).exists():
            (self.output_dir / METRICS_FILE).unlink()
        self.model, self.optimizer = self.accelerator.prepare(self.policy, self.optimizer)
        acc = self.accelerator
        weights = self.dataset.sample_weights() if hasattr(self.dataset, "sample_weights") else None
        sampler = ResumableSampler(len(self.dataset), weights, seed=cfg.seed, start=position,
                                   rank=acc.process_index, world_size=acc.num_processes)
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=sampler,
                                             num_workers=cfg.num_workers, collate_fn=_collate,
                                             # own generator: creating the iterator must not consume the
                                             # global RNG, or a resumed run would draw different noise
                                             generator=torch.Generator().manual_seed(cfg.seed))
        tb = self._tensorboard()
        if self.budget is not None:
            self.budget.start(self.step)
        bar = None
        if cfg.progress and self.is_main:
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.max_steps, initial=self.step, desc="train", dynamic_ncols=True)
        self.model.train()
        it = iter(loader)
        t_last, window = time.perf_counter(), []
        # cache misses per logged row, for the time budget (only visible when the loader reads in this process)
        cached = self.dataset if isinstance(self.dataset, CachedDataset) and cfg.num_workers == 0 else None
        reads_last = (cached.reads, cached.misses) if cached is not None else None
        while self.step < cfg.max_steps:
            batch = _to_device(next(it), acc.device)
            if (cfg.image_shift or cfg.color_jitter) and "pixel_values" in batch:
                # seeded by step: a resumed run draws the same augmentations
                g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
                batch["pixel_values"] = augment_images(batch["pixel_values"], batch.get("view_mask"),
                                                       cfg.image_shift, cfg.color_jitter, g)
            with acc.autocast():
                loss, info = self.model(batch)
            acc.backward(loss)
            grad_norm = acc.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            window.append(info)
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                now = time.perf_counter()
                row = {"step": self.step, "lr": self.scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                       "steps_per_s": len(window) / max(now - t_last, 1e-9)}
                if cached is not None:
                    reads, misses = cached.reads - reads_last[0], cached.misses - reads_last[1]
                    row["cache_miss"] = misses / max(reads, 1)
                    reads_last = (cached.reads, cached.misses)
                for k in window[0]:
                    row[k] = float(np.mean([w[k] for w in window]))
                row = _mean_across_ranks(acc, row)
                t_last, window = now, []
                if self.is_main:
                    self._log(row, tb)
                    if bar is not None:
                        bar.set_postfix(loss=f"{row['loss']:.4f}")
            if bar is not None:
                bar.update(1)
            if self.step % cfg.save_every == 0 or self.step == cfg.max_steps:
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()
        acc.wait_for_everyone()
        self.policy = self._unwrapped()
        return self.history

    def _log(self, row: dict, tb) -> None:
        self.history.append(row)
        with open(self.output_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")
        if tb is not None:
            for k, v in row.items():
                if k != "step":
                    tb.add_scalar(k, v, row["step"])
        if self.budget is not None:
            self.budget(row["step"], row)
        for cb in self.callbacks:
            cb(row["step"], row)

    def _tensorboard(self):
        if not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard not installed: JSON metrics only
            return None
        return SummaryWriter(str(self.output_dir / "tensorboard"))


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _mean_across_ranks(acc, row: dict) -> dict:
    if acc.num_processes == 1:
        return row
    keys = sorted(k for k in row if k != "step")
    t = torch.tensor([row[k] for k in keys], dtype=torch.float64, device=acc.device)
    t = acc.reduce(t, reduction="mean")
    return {"step": row["step"], **{k: float(v) for k, v in zip(keys, t.tolist())}}


def load_metrics(output_dir: str | Path) -> list[dict]:
    f = Path(output_dir) / METRICS_FILE
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.exists() else []

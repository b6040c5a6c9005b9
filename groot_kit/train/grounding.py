"""System 2 grounding pretext: "where on the table is the cube the instruction names?"

Demonstrations teach System 2 language only indirectly, through the action loss, and a CPU-sized
pretraining set holds a few hundred scenes: the tiny VLM learned to recognise the training scenes
instead of binding colour words to cubes (goal probe at chance, docs/results.md). Single rendered
frames are thousands of times cheaper than demos (about 4 ms per scene here), so this stage shows
System 2 tens of thousands of multi-cube scenes, each cube named in turn by the env's own
instruction, and trains it, with a linear head on the last prompt token, to regress the named
cube's table position (pick_place: and the named bin's, every cube/bin pair of a scene in turn). Afterwards the head is dropped and the backbone is what the action stage
builds on (``PretrainConfig.grounding_scenes``, usually with ``freeze_system2``).

    scenes = render_grounding_scenes(policy, "so100", "reach", n_scenes=20_000, seed=1_200_000)
    val = render_grounding_scenes(policy, "so100", "reach", n_scenes=300, seed=1_950_000)
    head, info = train_grounding(policy, [scenes], [val], GroundingConfig(minutes=15))
    grounding_probe(policy, head, val)["own_nearest_rate"]   # chance: 1 / num_cubes

Shapes: pixel_values [N, V, 3, S, S] uint8 (the processor's views, 0..255), cube_xy [N, K, 2] metres,
instructions N lists of K strings; pick_place adds bin_xy [N, 2, 2], bin_choice [N, K] (the bin each
probe instruction names) and pair_instructions [N][K][2]. The head maps the last prompt token [B, c]
to [B, 2] normalised cube xy (pick_place: [B, 4], cube xy then bin xy).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from groot_kit.eval.seeds import wilson_interval
from groot_kit.model.policy import last_prompt_token
from groot_kit.train.optim import build_adamw


@dataclass
class GroundingConfig:
    minutes: float = 15.0          # wall-time budget (0: exactly max_steps)
    max_steps: int = 20_000        # step cap (the budget usually ends the stage first)
    batch_size: int = 64           # (scene, named cube) pairs per step
    learning_rate: float = 3e-4    # AdamW, constant; the head and the whole System 2 train
    weight_decay: float = 0.01
    eval_every: int = 500          # steps between probes on the validation scenes
    subtask_weight: float = 0.0    # also co-train the sub-task text on demo frames (train_grounding's
                                   # subtask_data) with this weight; 0 = grounding only
    subtask_batch_size: int = 16   # demo frames per step for that loss
    seed: int = 0

    def __post_init__(self):
        if self.minutes < 0 or (self.minutes == 0 and self.max_steps < 1):
            raise ValueError(f"GroundingConfig: minutes={self.minutes}, max_steps={self.max_steps}: give a positive "
                             "time budget, or minutes=0 with max_steps >= 1")
        if self.batch_size < 1 or self.learning_rate <= 0 or self.eval_every < 1:
            raise ValueError("GroundingConfig: batch_size and eval_every must be >= 1 and learning_rate > 0")
        if self.subtask_weight < 0 or self.subtask_batch_size < 1:
            raise ValueError(f"GroundingConfig: subtask_weight={self.subtask_weight} must be >= 0 (0 = off) and "
                             f"subtask_batch_size={self.subtask_batch_size} >= 1")


@dataclass
class GroundingScenes:
    """First frames of multi-cube scenes with every cube's position and the instruction naming it."""
    embodiment: str
    task: str
    pixel_values: torch.Tensor                 # [N, V, 3, S, S] uint8
    view_mask: torch.Tensor | None             # [N, V] bool, or None
    cube_xy: torch.Tensor                      # [N, K, 2] float32, metres
    instructions: list[list[str]]              # [N][K], cube k named (pick_place: with bin bin_choice[n, k])
    seeds: list[int] = field(default_factory=list)
    bin_xy: torch.Tensor | None = None         # [N, 2, 2] float32 metres (pick_place only)
    bin_choice: torch.Tensor | None = None     # [N, K] long: the bin named by instructions[n][k]
    pair_instructions: list[list[list[str]]] | None = None   # [N][K][2]: cube k into bin b

    @property
    def has_bins(self) -> bool:
        return self.bin_xy is not None

    def __len__(self) -> int:
        return len(self.instructions)

    @property
    def num_cubes(self) -> int:
        return self.cube_xy.shape[1]

    def batch(self, idx: torch.Tensor, cube: torch.Tensor, instruction: list[str] | None = None,
              bin: torch.Tensor | None = None) -> dict:
        """Model batch for scenes `idx` [B] naming cubes `cube` [B] (pick_place: into bins `bin` [B],
        default the probe's bin_choice), or the given instructions."""
        if instruction is None:
            if bin is None:
                instruction = [self.instructions[i][k] for i, k in zip(idx.tolist(), cube.tolist())]
            else:
                instruction = [self.pair_instructions[i][k][b]
                               for i, k, b in zip(idx.tolist(), cube.tolist(), bin.tolist())]
        b = {"pixel_values": self.pixel_values[idx].float() / 255.0, "instruction": instruction}
        if self.view_mask is not None:
            b["view_mask"] = self.view_mask[idx]
        return b

    def targets(self, idx: torch.Tensor, cube: torch.Tensor, bin: torch.Tensor | None = None) -> torch.Tensor:
        """Pretext targets in metres: the named cube's xy [B, 2] (pick_place: with the named bin's, [B, 4])."""
        xy = self.cube_xy[idx, cube]
        if not self.has_bins:
            return xy
        bin = self.bin_choice[idx, cube] if bin is None else bin
        return torch.cat([xy, self.bin_xy[idx, bin]], -1)


def render_grounding_scenes(policy, embodiment: str, task: str, n_scenes: int, seed: int,
                            num_cubes: int = 3) -> GroundingScenes:
    """Reset the env on scene seeds seed..seed+n_scenes-1 and keep the first frame as the policy's
    processor sees it, each cube's xy, and the env's instruction naming each cube in turn (pick_place:
    a random bin with it). Uses the sim<->policy boundary of evaluation (sim_observation + processor)."""
    from groot_kit.data.processor import processor_for
    from groot_kit.sim.env import make_env
    from groot_kit.sim.policy_io import sim_observation

    if num_cubes < 2:
        raise ValueError(f"grounding needs num_cubes >= 2 (got {num_cubes}): with one cube the words carry nothing")
    if n_scenes < 1:
        raise ValueError(f"render_grounding_scenes: n_scenes={n_scenes}; give 1 or more")
    proc = processor_for(policy, embodiment)
    env = make_env(embodiment, task, image_size=policy.config.vlm.vision.image_size, num_cubes=num_cubes)
    pix, masks, xy, texts, bins, choice, pairs = [], [], [], [], [], [], []
    try:
        for s in range(seed, seed + n_scenes):
            obs, _ = env.reset(seed=s)
            b = proc(sim_observation(env, obs, proc.modality))
            pix.append((b["pixel_values"][0] * 255).round().to(torch.uint8))
            if "view_mask" in b:
                masks.append(b["view_mask"][0])
            xy.append(np.asarray(env.scene["cube_xy"], np.float32))
            rng = np.random.default_rng(s)
            if task == "pick_place":  # every cube/bin pair; the probe names each cube with one random bin
                pair = [[env.set_target(k, b) for b in (0, 1)] for k in range(num_cubes)]
                crow = [int(rng.integers(2)) for _ in range(num_cubes)]
                texts.append([pair[k][b] for k, b in enumerate(crow)])
                pairs.append(pair)
                choice.append(crow)
                bins.append(np.asarray(env.scene["bin_slots"], np.float32)[:, :2])
            else:
                texts.append([env.set_target(k) for k in range(num_cubes)])
    finally:
        env.close()
    extra = {}
    if task == "pick_place":
        extra = {"bin_xy": torch.from_numpy(np.stack(bins)), "bin_choice": torch.tensor(choice, dtype=torch.long),
                 "pair_instructions": pairs}
    return GroundingScenes(embodiment, task, torch.stack(pix), torch.stack(masks) if masks else None,
                           torch.from_numpy(np.stack(xy)), texts, list(range(seed, seed + n_scenes)), **extra)


class GroundingHead(nn.Module):
    """Linear on System 2's last real prompt token -> named cube xy (pick_place: then the named bin's
    xy), normalised per table ([B, 2] or [B, 4]; the width of xy_mean decides)."""

    def __init__(self, width: int, xy_mean: torch.Tensor, xy_std: torch.Tensor):
        super().__init__()
        self.proj = nn.Linear(width, xy_mean.numel())
        self.register_buffer("xy_mean", xy_mean.float().clone())
        self.register_buffer("xy_std", xy_std.float().clone())

    def forward(self, policy, batch: dict) -> torch.Tensor:
        """-> normalised xy [B, 2] (or [B, 4])"""
        vl, mask = policy.encode_vl(batch)
        return self.proj(last_prompt_token(vl, mask))

    def to_metres(self, xy: torch.Tensor) -> torch.Tensor:
        return xy * self.xy_std + self.xy_mean

    def normalise(self, xy: torch.Tensor) -> torch.Tensor:
        return (xy - self.xy_mean) / self.xy_std


@torch.no_grad()
def grounding_probe(policy, head: GroundingHead, scenes: GroundingScenes, batch_size: int = 256) -> dict:
    """Name each cube of every scene in turn; a hit when the predicted position is nearest the named
    cube (chance 1/K). Also the mean error to the named cube (cm) with its instruction and blanked.
    pick_place: also how often the predicted bin position is nearest the named bin (chance 1/2)."""
    was = policy.training
    policy.eval()
    n, K = len(scenes), scenes.num_cubes
    hits, err, err_blank, bin_hits, bin_err = 0, 0.0, 0.0, 0, 0.0
    for lo in range(0, n, batch_size):
        idx = torch.arange(lo, min(n, lo + batch_size))
        xy = scenes.cube_xy[idx]                                              # [b, K, 2]
        # a blanked prompt is the same for every cube of a scene: one pass, compared with each cube
        blank = head.to_metres(head(policy, scenes.batch(idx, torch.zeros_like(idx), [""] * len(idx))))[:, :2]
        err_blank += float((blank[:, None] - xy).norm(dim=-1).sum())
        for k in range(K):
            cube = torch.full_like(idx, k)
            out = head.to_metres(head(policy, scenes.batch(idx, cube)))
            pred = out[:, :2]
            hits += int((((pred[:, None] - xy) ** 2).sum(-1).argmin(1) == k).sum())
            err += float((pred - xy[:, k]).norm(dim=-1).sum())
            if scenes.has_bins:
                bxy, named = scenes.bin_xy[idx], scenes.bin_choice[idx, k]          # [b, 2, 2], [b]
                bin_hits += int((((out[:, None, 2:] - bxy) ** 2).sum(-1).argmin(1) == named).sum())
                bin_err += float((out[:, 2:] - bxy[torch.arange(len(idx)), named]).norm(dim=-1).sum())
    policy.train(was)
    m = n * K
    r = {"embodiment": scenes.embodiment, "n_scenes": n, "n_queries": m, "chance": 1.0 / K,
         "own_nearest": hits, "own_nearest_rate": hits / m, "own_nearest_ci95": wilson_interval(hits, m),
         "error_cm": 100 * err / m, "error_blank_cm": 100 * err_blank / m}
    if scenes.has_bins:
        r.update(bin_nearest=bin_hits, bin_nearest_rate=bin_hits / m, bin_nearest_ci95=wilson_interval(bin_hits, m),
                 bin_chance=0.5, bin_error_cm=100 * bin_err / m)
    return r


def train_grounding(policy, train: list[GroundingScenes], val: list[GroundingScenes],
                    cfg: GroundingConfig | None = None, log=print, subtask_data=None) -> tuple[GroundingHead, dict]:
    """Train System 2 (vision tower, connector, LM) and a fresh GroundingHead on the pretext.
    Embodiments are sampled in proportion to their scene counts. With cfg.subtask_weight > 0 and
    `subtask_data` (a GrootDataset / MixtureDataset of demos with sub-task labels), each step also
    adds the sub-task text loss of a batch of its frames (sampled by its mixture weights), so System 2
    learns to name the sub-task before an action stage that freezes it. -> (head, info with the probe curve)"""
    cfg = cfg or GroundingConfig()
    if not train:
        raise ValueError("train_grounding: no scenes given")
    cotrain = cfg.subtask_weight > 0 and subtask_data is not None
    if cfg.subtask_weight > 0 and subtask_data is None:
        raise ValueError("train_grounding: GroundingConfig.subtask_weight > 0 needs subtask_data (demo frames with "
                         "sub-task labels); pass it or set subtask_weight=0")
    if len({s.has_bins for s in train + val}) > 1:
        raise ValueError("train_grounding: mix of pick_place scenes (with bins) and other tasks; use one task")
    all_xy = torch.cat([s.cube_xy.reshape(-1, 2) for s in train])
    mean, std = all_xy.mean(0), all_xy.std(0)
    if train[0].has_bins:
        all_bins = torch.cat([s.bin_xy.reshape(-1, 2) for s in train])
        mean, std = torch.cat([mean, all_bins.mean(0)]), torch.cat([std, all_bins.std(0)])
    head = GroundingHead(policy.config.vlm.output_dim, mean, std.clamp(min=1e-3)).to(policy.device)
    params = list(policy.backbone.parameters()) + list(head.parameters())
    for p in policy.backbone.parameters():
        p.requires_grad_(True)
    opt = build_adamw(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    sizes = torch.tensor([len(s) for s in train], dtype=torch.float)
    curve = [{"step": 0, **_probe_row(policy, head, val)}]
    log(f"  grounding pretext: {int(sizes.sum())} scenes; probe at start: {curve[0]['own_nearest_rate']:.2f}"
        f" (chance {curve[0]['chance']:.2f})")
    policy.train()
    if cotrain:
        from groot_kit.data.dataset import collate
        w = subtask_data.sample_weights() if hasattr(subtask_data, "sample_weights") else np.ones(len(subtask_data))
        frame_weights = torch.as_tensor(w, dtype=torch.double)
    t0, step, losses, text_losses = time.perf_counter(), 0, [], []
    while step < cfg.max_steps and (cfg.minutes == 0 or time.perf_counter() - t0 < cfg.minutes * 60):
        sc = train[int(torch.multinomial(sizes, 1, generator=g))]
        idx = torch.randint(0, len(sc), (cfg.batch_size,), generator=g)
        cube = torch.randint(0, sc.num_cubes, (cfg.batch_size,), generator=g)
        bin_ = torch.randint(0, 2, (cfg.batch_size,), generator=g) if sc.has_bins else None
        target = head.normalise(sc.targets(idx, cube, bin_)).to(policy.device)
        ground_loss = ((head(policy, sc.batch(idx, cube, bin=bin_)) - target) ** 2).mean()
        loss = ground_loss
        if cotrain:
            pick = torch.multinomial(frame_weights, cfg.subtask_batch_size, replacement=True, generator=g)
            frames = [f for f in (subtask_data[int(i)] for i in pick) if f.get("subtask")]
            if frames:  # frames without a label (e.g. action-free video) teach no text
                text_loss = policy.subtask_text_loss(collate(frames))
                loss = loss + cfg.subtask_weight * text_loss
                text_losses.append(float(text_loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses.append(float(ground_loss.detach()))
        if step % cfg.eval_every == 0:
            row = {"step": step, "seconds": round(time.perf_counter() - t0, 1), "loss": float(np.mean(losses)),
                   **_probe_row(policy, head, val)}
            if text_losses:
                row["subtask_loss"] = float(np.mean(text_losses))
            losses, text_losses = [], []
            curve.append(row)
            log(f"  grounding step {step} ({row['seconds']:.0f} s): loss {row['loss']:.3f}, named cube nearest "
                f"{row['own_nearest_rate']:.2f}, error {row['error_cm']:.1f} cm (blank {row['error_blank_cm']:.1f})"
                + (f", named bin nearest {row['bin_nearest_rate']:.2f}" if "bin_nearest_rate" in row else "")
                + (f", sub-task text loss {row['subtask_loss']:.3f}" if "subtask_loss" in row else ""))
    final = {v.embodiment: grounding_probe(policy, head, v) for v in val}
    for emb, r in final.items():
        log(f"  grounding done, {step} steps: {emb} named cube nearest {r['own_nearest']}/{r['n_queries']} "
            f"(chance {r['chance']:.2f}), error {r['error_cm']:.1f} cm (blank {r['error_blank_cm']:.1f})"
            + (f"; named bin nearest {r['bin_nearest']}/{r['n_queries']}" if "bin_nearest" in r else ""))
    info = {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "batch_size": cfg.batch_size,
            "learning_rate": cfg.learning_rate, "train_scenes": {s.embodiment: len(s) for s in train},
            "val_scenes": {v.embodiment: len(v) for v in val}, "curve": curve, "final_probe": final,
            "subtask_weight": cfg.subtask_weight if cotrain else 0.0}
    policy.eval()
    return head, info


def _probe_row(policy, head, val: list[GroundingScenes]) -> dict:
    """Probe pooled over the validation sets (one row of the curve)."""
    rows = [grounding_probe(policy, head, v) for v in val]
    m = sum(r["n_queries"] for r in rows)
    hits = sum(r["own_nearest"] for r in rows)
    row = {"own_nearest_rate": hits / max(1, m), "chance": rows[0]["chance"] if rows else None,
           "error_cm": sum(r["error_cm"] * r["n_queries"] for r in rows) / max(1, m),
           "error_blank_cm": sum(r["error_blank_cm"] * r["n_queries"] for r in rows) / max(1, m)}
    if rows and "bin_nearest" in rows[0]:
        row["bin_nearest_rate"] = sum(r["bin_nearest"] for r in rows) / max(1, m)
    return row

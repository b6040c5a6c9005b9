"""Tier 3 (video without actions): LAPA-style latent actions and an inverse dynamics model (IDM).

* ``LatentActionModel`` (LAPA, Ye et al. 2024, tiny): a CNN encodes frames; an MLP on the pair
  (f(x_t), f(x_t+k)) gives a latent action that is vector-quantised against a small codebook
  (VQ-VAE loss, straight-through gradients, dead-code restarts); a decoder predicts the next
  frame's features (a low-res image of x_t+k) from f(x_t) and the quantised code.
* ``InverseDynamicsModel`` (the DreamGen recipe's labelling step): trained on labelled episodes
  to regress a_t from (x_t, x_t+1); it then pseudo-labels action-free episodes.

Both are tiny and train on CPU in seconds.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .episode import EpisodeData
from .errors import DataError


class _threads:
    """Train with few torch threads: on a shared 2-core machine 1 thread is ~4x faster than 2."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *a):
        torch.set_num_threads(self.old)


def _frames_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [T,H,W,3] -> float [T,3,size,size] in [0,1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def frame_pairs(episodes: list[EpisodeData], camera: str | None = None, size: int = 32, gap: int = 1):
    """Stack (x_t, x_t+gap) pairs over episodes: returns (x0 [N,3,s,s], x1 [N,3,s,s], episode id [N], t [N])."""
    x0, x1, eid, ts = [], [], [], []
    for i, ep in enumerate(episodes):
        cam = camera or next(iter(ep.frames))
        if cam not in ep.frames:
            raise DataError(f"episode {i}.frames", f"camera '{cam}' missing", f"pick one of {list(ep.frames)}")
        x = _frames_tensor(ep.frames[cam], size)
        if len(x) <= gap:
            continue
        x0.append(x[:-gap]); x1.append(x[gap:])
        eid.append(torch.full((len(x) - gap,), i)); ts.append(torch.arange(len(x) - gap))
    if not x0:
        raise DataError("episodes", "no frame pairs (episodes too short or empty)", "pass episodes with >= 2 frames")
    return torch.cat(x0), torch.cat(x1), torch.cat(eid), torch.cat(ts)


class FrameEncoder(nn.Module):
    def __init__(self, size: int = 32, width: int = 16, out: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.GELU(), nn.Conv2d(width, width, 4, 2, 1), nn.GELU(),
            nn.Conv2d(width, width, 3, 2, 1), nn.GELU(), nn.Flatten(),
            nn.Linear(width * (size // 8) ** 2, out))

    def forward(self, x):
        return self.net(x)


class VectorQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(num_codes, dim) * 0.1)
        self.beta = beta

    def forward(self, z):
        # cosine (l2-normalised) codes: much less prone to codebook collapse (Yu et al. 2022, ViT-VQGAN)
        z = F.normalize(z, dim=-1)
        cb = F.normalize(self.codebook, dim=-1)
        idx = (z @ cb.T).argmax(-1)
        q = cb[idx]
        loss = F.mse_loss(q, z.detach()) + self.beta * F.mse_loss(z, q.detach())
        return z + (q - z).detach(), idx, loss


class LatentActionModel(nn.Module):
    """LAPA-style latent action quantisation from frame pairs."""

    def __init__(self, size: int = 32, num_codes: int = 8, latent_dim: int = 16, feat: int = 64, pred_size: int = 16):
        super().__init__()
        self.size, self.pred_size, self.num_codes, self.latent_dim = size, pred_size, num_codes, latent_dim
        self.enc = FrameEncoder(size, out=feat)
        self.to_latent = nn.Sequential(nn.Linear(2 * feat, 128), nn.GELU(), nn.Linear(128, latent_dim))
        self.vq = VectorQuantizer(num_codes, latent_dim)
        self.dec = nn.Sequential(nn.Linear(feat + latent_dim, 256), nn.GELU(), nn.Linear(256, 3 * pred_size ** 2))

    def encode(self, x0, x1):
        f0, f1 = self.enc(x0), self.enc(x1)
        z = self.to_latent(torch.cat([f0, f1 - f0], -1))
        q, idx, vq_loss = self.vq(z)
        return f0, z, q, idx, vq_loss

    def forward(self, x0, x1):
        f0, z, q, idx, vq_loss = self.encode(x0, x1)
        pred = self.dec(torch.cat([f0, q], -1)).view(-1, 3, self.pred_size, self.pred_size)
        tgt = F.interpolate(x1, size=(self.pred_size,) * 2, mode="area")
        base = F.interpolate(x0, size=(self.pred_size,) * 2, mode="area")
        diff = tgt - base  # the decoder predicts the change of the next frame (what the action did)
        rec = F.mse_loss(pred, diff) / diff.var().clamp_min(1e-6)
        return rec + vq_loss, {"rec": rec.item(), "vq": vq_loss.item(), "codes": idx}

    @torch.no_grad()
    def codes(self, x0, x1) -> torch.Tensor:
        return self.encode(x0, x1)[3]


def codebook_usage(idx: torch.Tensor, num_codes: int) -> dict[str, Any]:
    counts = torch.bincount(idx.reshape(-1), minlength=num_codes).double()
    p = counts / counts.sum().clamp_min(1)
    ent = -(p[p > 0] * p[p > 0].log()).sum()
    return {"counts": counts.long().tolist(), "used": int((counts > 0).sum()), "num_codes": num_codes,
            "perplexity": float(ent.exp())}


def train_latent_action_model(episodes: list[EpisodeData], steps: int = 200, batch_size: int = 64,
                              num_codes: int = 8, size: int = 32, lr: float = 2e-3, seed: int = 0,
                              camera: str | None = None, log_every: int = 50,
                              threads: int | None = 1) -> tuple[LatentActionModel, dict]:
    with _threads(threads):
        return _train_lam(episodes, steps, batch_size, num_codes, size, lr, seed, camera, log_every)


def _train_lam(episodes, steps, batch_size, num_codes, size, lr, seed, camera, log_every):
    torch.manual_seed(seed)
    x0, x1, _, _ = frame_pairs(episodes, camera, size)
    m = LatentActionModel(size, num_codes)
    opt = torch.optim.AdamW(m.parameters(), lr=lr)
    hist, t0 = [], time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        b = torch.randint(len(x0), (min(batch_size, len(x0)),), generator=g)
        loss, info = m(x0[b], x1[b])
        opt.zero_grad(); loss.backward(); opt.step()
        if step == 0 or (step % 10 == 9 and step < 0.8 * steps):  # data init + dead-code restarts
            with torch.no_grad():
                z = m.to_latent(torch.cat([m.enc(x0[b]), m.enc(x1[b]) - m.enc(x0[b])], -1))
                used = torch.bincount(info["codes"], minlength=num_codes)
                dead = torch.arange(num_codes) if step == 0 else (used == 0).nonzero().flatten()
                if len(dead):
                    m.vq.codebook.data[dead] = F.normalize(z, dim=-1)[torch.randint(len(z), (len(dead),), generator=g)]
        if step % log_every == 0 or step == steps - 1:
            hist.append({"step": step, "loss": loss.item(), "rec": info["rec"], "vq": info["vq"]})
    m.eval()
    with torch.no_grad():
        idx = torch.cat([m.codes(x0[i:i + 512], x1[i:i + 512]) for i in range(0, len(x0), 512)])
    return m, {"history": hist, "usage": codebook_usage(idx, num_codes), "pairs": len(x0),
               "seconds": round(time.perf_counter() - t0, 2)}


def label_with_latent_actions(model: LatentActionModel, episodes: list[EpisodeData],
                              camera: str | None = None) -> list[EpisodeData]:
    """Episodes whose ``actions`` are the quantised latent action vectors (last frame repeats the previous)."""
    out = []
    for ep in episodes:
        x0, x1, _, _ = frame_pairs([ep], camera, model.size)
        with torch.no_grad():
            q = model.encode(x0, x1)[2].numpy()
            idx = model.codes(x0, x1).numpy()
        q = np.concatenate([q, q[-1:]]).astype(np.float32)
        out.append(EpisodeData(states=None, actions=q, frames=ep.frames, instruction=ep.instruction,
                               subtasks=ep.subtasks, tier="video",
                               provenance={**ep.provenance, "labels": "lapa_latent", "codes": idx.tolist()},
                               extra=dict(ep.extra)))
    return out


# ----------------------------------------------------------------------------- IDM
class InverseDynamicsModel(nn.Module):
    """a_t (normalized) from (x_t, x_t+1)."""

    def __init__(self, action_dim: int, size: int = 32, feat: int = 64):
        super().__init__()
        self.size, self.action_dim = size, action_dim
        self.enc = FrameEncoder(size, out=feat)
        self.head = nn.Sequential(nn.Linear(2 * feat, 128), nn.GELU(), nn.Linear(128, action_dim))
        self.register_buffer("a_mean", torch.zeros(action_dim))
        self.register_buffer("a_std", torch.ones(action_dim))

    def forward(self, x0, x1):
        f0, f1 = self.enc(x0), self.enc(x1)
        return self.head(torch.cat([f0, f1 - f0], -1))

    @torch.no_grad()
    def predict(self, x0, x1) -> torch.Tensor:
        return self(x0, x1) * self.a_std + self.a_mean


def _pair_actions(episodes, camera, size):
    x0, x1, eid, ts = frame_pairs(episodes, camera, size)
    acts = []
    for i, ep in enumerate(episodes):
        a = ep.actions if ep.actions is not None else ep.extra.get("held_back_actions")
        if a is None:
            raise DataError(f"episode {i}.actions", "no actions to train or score the IDM",
                            "train the IDM on labelled (teleop/synthetic) episodes")
        acts.append(torch.as_tensor(np.asarray(a[:-1], np.float32)))
    return x0, x1, torch.cat(acts)


def train_idm(episodes: list[EpisodeData], steps: int = 300, batch_size: int = 64, size: int = 32,
              lr: float = 2e-3, seed: int = 0, camera: str | None = None,
              threads: int | None = 1) -> tuple[InverseDynamicsModel, dict]:
    with _threads(threads):
        return _train_idm(episodes, steps, batch_size, size, lr, seed, camera)


def _train_idm(episodes, steps, batch_size, size, lr, seed, camera):
    torch.manual_seed(seed)
    x0, x1, a = _pair_actions(episodes, camera, size)
    m = InverseDynamicsModel(a.shape[1], size)
    m.a_mean.copy_(a.mean(0)); m.a_std.copy_(a.std(0).clamp_min(1e-6))
    an = (a - m.a_mean) / m.a_std
    opt = torch.optim.AdamW(m.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    hist, t0 = [], time.perf_counter()
    for step in range(steps):
        b = torch.randint(len(x0), (min(batch_size, len(x0)),), generator=g)
        loss = F.mse_loss(m(x0[b], x1[b]), an[b])
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 50 == 0 or step == steps - 1:
            hist.append({"step": step, "loss": loss.item()})
    m.eval()
    return m, {"history": hist, "pairs": len(x0), "seconds": round(time.perf_counter() - t0, 2)}


def evaluate_idm(m: InverseDynamicsModel, episodes: list[EpisodeData], camera: str | None = None) -> dict[str, Any]:
    """Error of IDM pseudo-actions against the true (held-back) actions, in raw action units.

    Also reports the error of a trivial baseline (predicting the training mean) for scale.
    """
    x0, x1, a = _pair_actions(episodes, camera, m.size)
    pred = torch.cat([m.predict(x0[i:i + 512], x1[i:i + 512]) for i in range(0, len(x0), 512)])
    mse = ((pred - a) ** 2).mean(0)
    base = ((m.a_mean - a) ** 2).mean(0)
    return {"mse": float(mse.mean()), "mae": float((pred - a).abs().mean()), "mse_per_dim": mse.tolist(),
            "baseline_mse": float(base.mean()), "baseline_mse_per_dim": base.tolist(),
            "r2": float(1 - mse.sum() / base.sum().clamp_min(1e-12)),
            "r2_per_dim": (1 - mse / base.clamp_min(1e-12)).tolist(),
            "pairs": len(x0)}


def pseudo_label(m: InverseDynamicsModel, episodes: list[EpisodeData], camera: str | None = None,
                 score: dict | None = None) -> list[EpisodeData]:
    """Action-free episodes -> episodes with IDM pseudo-actions (tier stays 'video', provenance says so)."""
    out = []
    for ep in episodes:
        x0, x1, _, _ = frame_pairs([ep], camera, m.size)
        p = m.predict(x0, x1).numpy()
        p = np.concatenate([p, p[-1:]]).astype(np.float32)
        st = ep.states if ep.states is not None else ep.extra.get("held_back_states")
        out.append(EpisodeData(states=st, actions=p, frames=ep.frames, instruction=ep.instruction,
                               subtasks=ep.subtasks, tier="video",
                               provenance={**ep.provenance, "labels": "idm", **({"idm_eval": score} if score else {})},
                               success=ep.success, extra=dict(ep.extra)))
    return out

"""Wrist-view ablation for the humanoid: closed-loop `reach` success by hand, with the wrist image
as rendered and replaced by zeros.

    python scripts/ablate_wrist_view.py            # committed base, 50 scenes from seed 300000 (~8 min)

The README's stage-8 figures were measured at commit 0674a72 (the stage-8 base with the humanoid's
earlier home pose and right-wrist view); run it there to reproduce them.

The cube's side picks the arm (left when y > 0), so success is split by hand. Writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path



def by_hand(episodes: list[dict], num_cubes: int) -> dict[str, str]:
    from groot_kit.sim.env import make_env
    env = make_env("gr1_upper", "reach", num_cubes=num_cubes, render=False)
    tally = {"left": [0, 0], "right": [0, 0]}
    for e in episodes:
        env.reset(seed=e["seed"])
        t = tally[env.target["arm"]]
        t[0], t[1] = t[0] + int(e["success"]), t[1] + 1
    env.close()
    return {k: f"{s}/{n}" for k, (s, n) in tally.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="data_samples/checkpoints/tiny_base")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=300_000)
    p.add_argument("--output", default="outputs/ablate_wrist_view.json")
    a = p.parse_args(argv)
    from groot_kit.eval import evaluate_closed_loop
    from groot_kit.model.policy import GrootPolicy

    policy = GrootPolicy.from_pretrained(a.checkpoint).eval()
    out = {"checkpoint": a.checkpoint, "episodes": a.episodes, "seed": a.seed}
    for name, blank in (("as_rendered", ()), ("wrist_blanked", ("wrist",))):
        r = evaluate_closed_loop(policy, "gr1_upper", "reach", a.episodes, seed=a.seed, replan_every=8,
                                 env_kwargs={"num_cubes": 1, "blank_cameras": blank})
        out[name] = {"successes": r["successes"], "n_episodes": r["n_episodes"], **by_hand(r["episodes"], 1)}
        print(f"{name}: {r['successes']}/{r['n_episodes']}  left {out[name]['left']}  right {out[name]['right']}")
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

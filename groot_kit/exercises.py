"""``check_*`` helpers: a notebook's exercise cell calls one with the learner's answer and gets a
plain verdict with the reason. Each check recomputes the truth with the kit's own code, so the
answer key cannot drift from what the notebook actually does.

    from groot_kit.exercises import check_mask_ones
    check_mask_ones(32)        # 00, exercise 3

Notebook, exercise -> check (what it checks):
    00 quickstart, 3                check_mask_ones           1s in one sample's action mask
    01 data pyramid, 4              check_tier_shares         sampled tier shares follow the weights
    02 dual-system architecture, 3  check_system2_loss        parameters System 2 loses at select_layer=6
    03 pretraining, 2               check_chunk_queries       chunks one full-length episode samples
    04 fine-tune a custom arm, 1    check_lora_parameters     LoRA parameters with TARGETS="dit+vlm"
    05 MuJoCo rollouts, 4           check_home_pose_subtask   oracle sub-task of a home-pose policy
    06 imitation vs RL, 2           check_rl_beats_scratch    imitation + RL first to 50% success?
    07 AGX / TensorRT export, 1     check_baked_input         system1 input gone with embodiment_slot=0
    08 bring your own data, 2       check_least_moving_joint  arm joint that moves least in an episode
"""
from __future__ import annotations

import numbers
import re
from typing import Iterable, Mapping


def _verdict(ok: bool, right: str, wrong: str) -> bool:
    print(("Right. " + right) if ok else ("Not yet. " + wrong))
    return ok


def _int(answer) -> int | None:
    """The answer as an int, or None when it is not one (a verdict, not a traceback)."""
    try:
        return int(answer)
    except (TypeError, ValueError):
        return None


def check_mask_ones(answer: int | None, action_dims: int = 2, preset: str = "tiny") -> bool:
    """00, exercise 3: entries of ONE sample's action mask that are 1 with `action_dims` real dims."""
    from groot_kit.model.policy import GrootPolicy, dummy_batch
    policy = GrootPolicy(preset)
    mask = dummy_batch(policy, batch_size=1, training=True, action_dims=action_dims)["action_mask"][0]
    truth, (H, D) = int(mask.sum()), tuple(mask.shape)
    if answer is None:
        return _verdict(False, "", f"Put your count in the call (the mask is [H={H}, Dmax_a={D}]).")
    return _verdict(int(answer) == truth, f"H x dims = {H} x {action_dims} = {truth}; the other "
                    f"{H * D - truth} padded entries are 0 and do not count in the loss.",
                    f"The mask is [H={H}, Dmax_a={D}]: which of its columns are real action dims?")


def check_tier_shares(shares: Mapping[str, float], weights: Mapping[str, float], tol: float = 0.1) -> bool:
    """01, exercise 4: the sampled tier shares follow the tier weights (each within `tol`)."""
    total = sum(weights.values())
    target = {k: v / total for k, v in weights.items()}
    off = {k: round(shares.get(k, 0.0) - t, 3) for k, t in target.items() if abs(shares.get(k, 0.0) - t) > tol}
    return _verdict(not off, f"the sampler follows the weights {target}, whatever each tier's size.",
                    f"these tiers are off their target share: {off}. Did you rerun the sampling cell?")


def check_system2_loss(answer: float | None, select_layer: int = 6, preset: str = "n1_2b",
                       rel_tol: float = 0.02) -> bool:
    """02, exercise 3: parameters System 2 loses when `preset` keeps only `select_layer` LM layers
    (both models built on the meta device; within `rel_tol`, so "about 0.4B" style answers count)."""
    import torch

    from groot_kit.config import get_preset
    from groot_kit.model.policy import GrootPolicy
    cut = get_preset(preset)
    full_layers = cut.vlm.select_layer
    cut.vlm.select_layer = select_layer
    with torch.device("meta"):
        full, short = GrootPolicy(preset).num_parameters(), GrootPolicy(cut).num_parameters()
    truth = full["system2_vlm"] - short["system2_vlm"]
    if answer is None:
        return _verdict(False, "", f"Put your number of parameters in the call ({preset} keeps {full_layers} "
                        f"LM layers; you keep {select_layer}).")
    number = isinstance(answer, numbers.Real) and not isinstance(answer, bool)
    ok = number and abs(answer - truth) <= rel_tol * abs(truth)
    return _verdict(ok, f"{truth:,} parameters ({truth / full['system2_vlm']:.0%} of System 2), all in the "
                    f"{full_layers - select_layer} language-model layers cut; vision tower and connector "
                    "are unchanged.",
                    ("" if number else "Give a number (e.g. 123e6). ") + "Compare num_parameters()['system2_vlm'] "
                    "of both builds, or count the parameters of the LM layers you drop.")


def check_chunk_queries(answer: int | None, replan_every: int = 2, embodiment: str = "so100",
                        task: str = "reach") -> bool:
    """03, exercise 2: chunks the policy samples in one full-length (timed-out) closed-loop episode
    at `replan_every`, counted by the evaluator's own chunk executor (mode "replan")."""
    import numpy as np

    from groot_kit.chunking import ChunkExecutor
    from groot_kit.config import get_preset
    from groot_kit.sim import make_env
    env = make_env(embodiment, task, render=False)
    steps, H = env.max_steps, get_preset("tiny").action_head.action_horizon
    env.close()

    def chunks(n: int) -> int:
        ex, count = ChunkExecutor("replan", H, n), 0
        for _ in range(steps):
            if ex.needs_chunk():
                ex.add_chunk(np.zeros((H, 1)))
                count += 1
            ex.next_action()
        return count
    truth, open_loop = chunks(replan_every), chunks(H)
    if answer is None:
        return _verdict(False, "", f"Put your count in the call (one full-length {embodiment}/{task} episode "
                        f"is {steps} control steps; a chunk holds H={H} actions).")
    return _verdict(_int(answer) == truth, f"{steps} steps, a new chunk every {replan_every}: {truth} chunks, against "
                    f"{open_loop} at replan_every={H}. Each chunk is one System 2 + System 1 call, so the fast "
                    f"replanning costs {truth / open_loop:.1f}x the model compute per episode.",
                    f"The executor keeps only the first {replan_every} actions of each chunk, then asks again. "
                    f"How many asks fit in {steps} steps?")


def check_lora_parameters(answer: int | None, rank: int, targets: str = "dit+vlm", config="tiny") -> bool:
    """04, exercise 1: LoRA parameters (counts["lora"] in section 4) with `targets` at `rank`, on a
    fresh policy built from `config` (a preset name or the base's GrootConfig)."""
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train import lora as L

    def lora_count(t: str) -> int:
        policy = GrootPolicy(config)
        L.apply_lora(policy, rank=rank, alpha=2.0 * rank, targets=t)
        return sum(p.numel() for n, p in policy.named_parameters() if "lora_" in n)
    truth, dit = lora_count(targets), lora_count("dit")
    if answer is None:
        return _verdict(False, "", f"Put your count in the call: LoRA parameters at rank {rank} with "
                        f"TARGETS = {targets!r} (rerun section 4 with it, or work it out).")
    return _verdict(_int(answer) == truth, f"{truth:,} LoRA parameters, {truth - dit:,} more than 'dit' alone "
                    f"({dit:,}); the embodiment slot trains on top either way.",
                    f"'dit' alone gives {dit:,}. Each adapted Linear(in, out) adds A (r x in) and B (out x r); "
                    "'vlm' adds q/k/v/o_proj in every language-model layer.")


def check_home_pose_subtask(answer: str | Iterable[str] | None, embodiment: str = "so100",
                            task: str = "pick_place", seed: int = 0) -> bool:
    """05, exercise 4: the oracle sub-task labels (info["subtask"]) seen by a policy that only
    returns the home pose, over one whole episode (physics only, no rendering)."""
    from groot_kit.sim import make_env, rollout
    env = make_env(embodiment, task, render=False)
    home = env.spec_e.home_action()
    ep = rollout(env, lambda obs: home, seed=seed, record_frames=False)
    env.close()
    truth = set(ep.subtasks)
    if answer is None:
        return _verdict(False, "", "Put the label (or the set of labels) info['subtask'] shows in the call, "
                        "e.g. \"lift\" or {\"lift\", \"move\"}.")
    given = {answer} if isinstance(answer, str) else set(answer)
    given = {str(a).strip().lower() for a in given}
    return _verdict(given == truth, f"{sorted(truth)} for all {len(ep)} steps: the oracle reads the world state "
                    "(gripper, cube, bin), and a robot that never leaves home never changes it.",
                    "The label is computed from the world state (GrootSimEnv.oracle_subtask), not from the "
                    "policy. What does the world look like if the arm never moves?")


def check_rl_beats_scratch(answer: bool | str | None, res: Mapping) -> bool:
    """06, exercise 2: in the run held by `res` (the notebook's dict), does imitation + RL reach 50%
    success in fewer environment samples (demos included) than RL from scratch? yes/no."""
    from groot_kit.recipes.imitation_vs_rl import summary_table
    if answer is None:
        return _verdict(False, "", "Put yes or no in the call (after rerunning sections 2-4 with your settings).")
    arms = res.get("arms", {})
    if not {"imitation_rl", "rl_scratch"} <= set(arms):
        return _verdict(False, "", "res has no results for both RL arms yet: run sections 3 and 4 first.")
    s50 = {r["arm"]: r["samples_to_50pct"] for r in summary_table({"arms": arms})}
    ft, sc = s50["imitation_rl"], s50["rl_scratch"]
    truth = ft is not None and (sc is None or ft < sc)
    said = answer if isinstance(answer, bool) else str(answer).strip().lower() in ("yes", "y", "true")
    fmt = lambda n: "never" if n is None else f"after {n:,} samples"
    return _verdict(said == truth, f"In this run imitation + RL reached 50% {fmt(ft)}, RL from scratch {fmt(sc)}.",
                    "Read the 'env steps to 50%' column (summary_table(res); '-' means never reached): "
                    "the smaller number wins, and never reaching 50% cannot win.")


def check_baked_input(answer: str | None, policy=None) -> bool:
    """07, exercise 1: the input the `system1` graph no longer takes when exported with
    embodiment_slot=0 (graph specs compared, nothing exported)."""
    from groot_kit.export.onnx_export import graph_specs
    from groot_kit.model.policy import GrootPolicy
    policy = policy if policy is not None else GrootPolicy("tiny")
    names = lambda slot: set(graph_specs(policy, embodiment_slot=slot)["system1"].make_inputs(1, 0))
    gone = names(None) - names(0)
    if answer is None:
        return _verdict(False, "", "Put the input's name (a string) in the call.")
    return _verdict(str(answer).strip() in gone, f"{sorted(gone)}: with the slot fixed at export, every "
                    "category-specific layer keeps one weight slice, so there is nothing left to select per sample.",
                    "Compare report['modules']['system1']['inputs'] of section 1's export with those of "
                    "the export with embodiment_slot=0.")


def check_least_moving_joint(answer: int | str | None, dataset="data_samples/custom_arm_expert",
                             episode: int = 1, key: str = "arm") -> bool:
    """08, exercise 2: index d of the `key` state dim (state.arm[d] in the plot, from 0) whose
    recorded value spans the smallest range (max - min) over `episode`."""
    import numpy as np

    from groot_kit.data.inspect import read_frames
    from groot_kit.data.reader import open_dataset
    from groot_kit.paths import repo_path
    if answer is None:
        return _verdict(False, "", f"Put d of state.{key}[d] in the call (counted from 0, as in the plot's legend).")
    root = repo_path(dataset)
    s = open_dataset(root).modality.state[key]
    df = read_frames(root, columns=[s.original_key, "episode_index"])
    x = np.stack(df[df["episode_index"] == episode][s.original_key].to_numpy())[:, s.src[0]:s.src[1]]
    span = np.ptp(x, axis=0)
    truth = int(np.argmin(span))
    found = re.findall(r"\d+", str(answer))
    ok = bool(found) and int(found[-1]) == truth
    return _verdict(ok, f"state.{key}[{truth}] spans {span[truth]:.3f} rad over the episode; the next "
                    f"smallest span is {np.sort(span)[1]:.3f} rad.",
                    f"Count from 0 as the legend does (state.{key}[0] ... [{len(span) - 1}]) and compare how far "
                    "each solid line travels between its lowest and highest point.")

"""A groot_kit checkpoint driven by LeRobot's own inference step (`predict_action`, what
`lerobot-record` calls each tick) on frames recorded in an SO-100 dataset: no hardware needed."""
import warnings

import numpy as np
import pytest
import torch

import fixtures_datasets as F
from groot_kit.data.convert import CACHE_ENV

BASE = F.Path(__file__).resolve().parents[1] / "data_samples/checkpoints/tiny_base"


@pytest.fixture
def so100_policy(tmp_path, monkeypatch):
    """The base with an SO-100 dataset's processor in a fresh slot (what `groot-kit train` sets up)."""
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train.run import NewRobot, build_datasets
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    src = F.so100_v21_av1(tmp_path / "so100_arm", n_eps=2, T=20)
    policy = GrootPolicy.from_pretrained(BASE).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = build_datasets([str(src)], policy, new_robot=NewRobot(policy, None, "so100"))
    return policy, ds


def test_lerobot_predict_action_loop(so100_policy):
    from lerobot.common.control_utils import predict_action
    from lerobot.processor.factory import make_policy_processor_pipelines
    from groot_kit.lerobot_policy import GrootKitPolicy

    policy, ds = so100_policy
    lp = GrootKitPolicy.from_groot_kit("<in memory>", embodiment="so100_arm", policy=policy, n_action_steps=4)
    assert lp.config.output_features["action"].shape == (6,)
    assert set(lp.config.input_features) == {"observation.state", "observation.images.webcam"}
    pre, post = make_policy_processor_pipelines([], [])
    calls = []
    inner = lp.predict_action_chunk
    lp.predict_action_chunk = lambda b, **kw: calls.append(1) or inner(b, **kw)
    lp.reset()
    actions = []
    for i in range(8):  # one episode's recorded frames, as a robot would deliver them
        item = ds.ds[i]
        obs = {"observation.state": item["observation.state"].numpy().astype(np.float32),
               "observation.images.webcam": (item["observation.images.webcam"].permute(1, 2, 0).numpy() * 255)
               .round().astype(np.uint8)}
        if i == 0:
            torch.manual_seed(5)
        act = predict_action(obs, lp, torch.device("cpu"), pre, post, False, task="pick up the red cube",
                             robot_type="so100")
        actions.append(np.asarray(act))
        if i == 0:  # same as the kit's own processor + policy on that observation and noise
            raw = {"state.single_arm": obs["observation.state"][:5], "state.gripper": obs["observation.state"][5:],
                   "video.webcam": obs["observation.images.webcam"],
                   "annotation.human.task_description": "pick up the red cube"}
            torch.manual_seed(5)
            dec = lp.processor.decode_action(policy.predict_action_chunk(lp.processor(raw)))
            want = np.concatenate([dec["action.single_arm"][0, 0], dec["action.gripper"][0, 0]])
            assert np.allclose(actions[0].reshape(-1), want, atol=1e-5)
    assert len(calls) == 2  # a chunk every n_action_steps = 4 ticks
    a = np.stack([x.reshape(-1) for x in actions])
    st = lp.processor.stats.groups["action"]
    lo = np.concatenate([st["single_arm"].min, st["gripper"].min])
    hi = np.concatenate([st["single_arm"].max, st["gripper"].max])
    assert a.shape == (8, 6) and np.isfinite(a).all() and (a >= lo - 1e-5).all() and (a <= hi + 1e-5).all()
    batch = {"observation.state": torch.stack([ds.ds[i]["observation.state"] for i in range(2)]),
             "observation.images.webcam": torch.stack([ds.ds[i]["observation.images.webcam"] for i in range(2)]),
             "action": torch.stack([ds.ds[i]["action"] for i in range(2)]), "task": ["pick up the red cube"] * 2}
    loss, info = lp.forward(batch)  # LeRobot's training batch gives the kit's flow-matching loss
    assert loss.ndim == 0 and torch.isfinite(loss) and "flow_loss" in info

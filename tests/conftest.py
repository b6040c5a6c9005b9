import os

# Tests never touch the network and render headless.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GROOT_KIT_FAST", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def tiny_policy():
    from groot_kit.model.policy import GrootPolicy
    torch.manual_seed(0)
    return GrootPolicy("tiny").eval()

"""groot_kit.runtime: dual-rate runtime (System 2 slow thread, System 1 at the control rate) and the
ZeroMQ policy server/client (NVIDIA Isaac-GR00T inference-service wire format).

    from groot_kit.runtime import DualRateRuntime, GrootSystems, PolicyServer, PolicyClient, serve
"""
from groot_kit.chunking import MODES, ChunkExecutor, compare_modes, discontinuity

from .client import PolicyClient, ServerError
from .dual_rate import DualRateRuntime, LatestSlot, RateStats
from .policy_fn import (
           GrootPolicyFn,
           demo_observation,
           demo_processor,
           modality_config_from_processor,
)
from .server import (
           ObservationSpec,
           PolicyServer,
           RequestError,
           serve,
           validate_observation,
)
from .systems import GrootSystems

__all__ = ["PolicyClient", "ServerError", "MODES", "ChunkExecutor", "DualRateRuntime", "GrootSystems", "LatestSlot",
           "RateStats", "compare_modes", "discontinuity", "GrootPolicyFn", "demo_observation", "demo_processor",
           "modality_config_from_processor", "ObservationSpec", "PolicyServer", "RequestError", "serve",
           "validate_observation"]

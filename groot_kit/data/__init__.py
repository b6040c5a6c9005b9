"""groot_kit.data: LeRobot v3.0 datasets, modality.json, normalization, mixtures and the data pyramid."""
from .convert import convert_v2_to_v3
from .dataset import GrootDataset, MixtureDataset, MixtureSampler, collate
from .episode import TIERS, EpisodeData, from_sim_episode
from .errors import DataError
from .modality import ModalityConfig
from .normalization import MODES, KeyStats, NormalizationStats
from .processor import ACTION_HORIZON, MAX_ACTION_DIM, MAX_STATE_DIM, GrootProcessor
from .reader import DatasetInfo, open_dataset
from .writer import EncoderOptions, write_dataset

__all__ = [
    "ACTION_HORIZON", "MAX_ACTION_DIM", "MAX_STATE_DIM", "GrootDataset", "MixtureDataset", "MixtureSampler",
    "collate", "TIERS", "EpisodeData", "from_sim_episode", "DataError", "ModalityConfig",
    "MODES", "KeyStats", "NormalizationStats", "GrootProcessor", "DatasetInfo", "convert_v2_to_v3",
    "open_dataset", "EncoderOptions", "write_dataset",
]

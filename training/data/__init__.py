"""Training data: dataset readers (InterHuman, InterX), batching and loaders."""
from .batching import collate_interactions, make_loader
from .interhuman import InterHumanDataset
from .interx import InterXDataset

__all__ = ["InterHumanDataset", "InterXDataset", "collate_interactions", "make_loader"]

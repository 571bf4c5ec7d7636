"""Datasets decoded once into the on-disk data cache, split, normalised, resident or streamed."""

from akd_core.data.dataset import Dataset
from akd_core.data.loader import load_dataset

__all__ = ["Dataset", "load_dataset"]

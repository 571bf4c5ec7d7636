"""Datasets loaded into memory as numpy arrays, split and normalised."""

from akd_core.data.dataset import Dataset
from akd_core.data.loader import load_dataset

__all__ = ["Dataset", "load_dataset"]

"""Datasets, splitters and the federation builder."""

from fscore.data.dataset import ClientData, Dataset, Federation
from fscore.data.splitters import dirichlet_split, iid_split, train_test_split
from fscore.data.synthetic import synthetic_devices

__all__ = ["ClientData", "Dataset", "Federation", "dirichlet_split", "iid_split", "synthetic_devices",
           "train_test_split"]

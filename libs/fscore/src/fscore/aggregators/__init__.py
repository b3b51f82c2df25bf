"""Aggregators: FedAvg, the FedOpt server optimizers, FedNova and Byzantine-robust rules, each registered by name."""

from fscore.aggregators import fednova, fedopt, robust
from fscore.aggregators.averaging import mean_delta, sample_weights, weighted_average
from fscore.aggregators.base import Aggregator, ClientUpdate, aggregator_names, make_aggregator, register_aggregator
from fscore.aggregators.fedavg import FedAvg
from fscore.aggregators.fednova import FedNova
from fscore.aggregators.fedopt import FedAvgM, FedOpt
from fscore.aggregators.robust import Bulyan, Krum, Median, MultiKrum, NormBounding, TrimmedMean

__all__ = ["Aggregator", "Bulyan", "ClientUpdate", "FedAvg", "FedAvgM", "FedNova", "FedOpt", "Krum", "Median",
           "MultiKrum", "NormBounding", "TrimmedMean", "aggregator_names", "fednova", "fedopt", "make_aggregator",
           "mean_delta", "register_aggregator", "robust", "sample_weights", "weighted_average"]

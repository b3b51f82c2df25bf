"""Aggregators: FedAvg now; FedOpt, FedNova, robust and async rules register themselves the same way."""

from fscore.aggregators.averaging import weighted_average
from fscore.aggregators.base import Aggregator, ClientUpdate, aggregator_names, make_aggregator, register_aggregator
from fscore.aggregators.fedavg import FedAvg

__all__ = ["Aggregator", "ClientUpdate", "FedAvg", "aggregator_names", "make_aggregator", "register_aggregator",
           "weighted_average"]

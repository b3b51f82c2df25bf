import pytest

from fscore.aggregators.base import Aggregator
from fscore.samplers import Sampler
from fscore.trainers.base import Trainer


def test_trainer_missing_methods_fails_at_construction_naming_them():
    class Half(Trainer):
        def train(self, data): ...

        def get_parameters(self): ...

    with pytest.raises(NotImplementedError, match="Half must implement set_parameters, evaluate"):
        Half()


def test_aggregator_and_sampler_need_their_one_method():
    class A(Aggregator):
        pass

    class S(Sampler):
        pass

    with pytest.raises(NotImplementedError, match="aggregate"):
        A()
    with pytest.raises(NotImplementedError, match="sample"):
        S()


def test_worker_without_role_fails_at_construction():
    from fscore.message import MessageCatalog
    from fscore.worker import BaseWorker

    with pytest.raises(NotImplementedError, match="role"):
        BaseWorker("w", "c", MessageCatalog(), None)

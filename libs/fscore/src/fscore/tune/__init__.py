"""Auto-tuning (issue 17, the paper's §4.3 and Figure 13): ``fscope tune`` searches a course's hyperparameters
with Optuna's samplers and pruners, with rounds as the fidelity and course snapshots for promotion."""

from fscore.tune.settings import TuneSettings
from fscore.tune.space import SearchSpace
from fscore.tune.study import Tuner

__all__ = ["SearchSpace", "TuneSettings", "Tuner"]

"""Trainers: the interface and framework-free trainers; framework ones are imported on demand."""

from fscore.trainers.base import EvalResult, NoOpTrainer, Trainer, TrainResult

__all__ = ["EvalResult", "NoOpTrainer", "TrainResult", "Trainer"]

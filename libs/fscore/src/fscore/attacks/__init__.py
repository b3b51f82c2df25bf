"""Attack simulation (paper §4.2): plug-ins that make participants misbehave, to show what a defence withstands.

    poisoning.py   model poisoning: sign flip, scaling, Gaussian noise in place of an honest update
"""

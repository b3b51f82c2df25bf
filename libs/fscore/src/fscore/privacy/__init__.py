"""Privacy protection as plug-ins (paper §4.1): client-side DP, central DP-FedAvg, NbAFL, and their accountant.

Each mechanism is a plug-in (:mod:`fscore.plugins`) chosen in the config for the whole course or for
some participants; the accountant (:mod:`fscore.privacy.accounting`, on ``dp-accounting``) reports the
ε they spend in ``summary.json`` and in ``fscope check`` (:mod:`fscore.privacy.report`).
"""

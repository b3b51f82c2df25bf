"""An example lab package: a model of its own in both backends (see examples/digits_custom_model.yaml).

Put ``examples`` on PYTHONPATH to use it: ``PYTHONPATH=examples fscope run examples/digits_custom_model.yaml``.
"""

"""Hides the tox env's TensorFlow from Flower's processes (see bench/peers/flower/harness.py).

flwr.simulation.ray_transport.utils runs ``import tensorflow`` whenever it can (for GPU memory growth only),
in the driver and in every Ray actor. The torch-only workload has no use for it, and with it loaded, torch's
first optimizer (which imports triton through torch._dynamo) aborts on two copies of LLVM in one process.
harness.py puts this directory first on sys.path, and so on the Ray workers' PYTHONPATH.
"""

raise ModuleNotFoundError("tensorflow is hidden from the Flower harness", name="tensorflow")

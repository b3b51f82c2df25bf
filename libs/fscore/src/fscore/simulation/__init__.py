"""Standalone simulation: device profiles, the virtual network and the runner."""

from fscore.simulation.device import DeviceProfile

__all__ = ["DeviceProfile"]

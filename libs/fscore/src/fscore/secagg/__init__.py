"""Secure aggregation (Bonawitz et al. 2017; issue 16, part 3): the coordinator learns only the sum.

    field.py     fixed-point updates over GF(2^61 - 1), and masks from a seed (ChaCha20)
    shamir.py    t-of-n secret sharing of the mask seeds and keys, over GF(2^127 - 1)
    protocol.py  one round: advertise keys, share, masked input, unmask (dropouts survived)

These are the protocol's parts, tested on their own; the plug-in pair that runs them as messages
in a course is not built yet.
"""

from fscore.secagg.field import FixedPoint, P
from fscore.secagg.protocol import Advertisement, SecAggError, SecAggParticipant, SecAggServer

__all__ = ["P", "Advertisement", "FixedPoint", "SecAggError", "SecAggParticipant", "SecAggServer"]

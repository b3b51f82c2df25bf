"""Course snapshots (issue 17): a course's whole state as one versioned Avro record, restored bit for bit.

:mod:`.state` turns a worker into plain data and back, :mod:`.record` is the Avro record and its checks, and
:mod:`.course` takes and restores a whole course.
"""

from fscore.snapshot.record import SNAPSHOT_VERSION, CourseSnapshot, check_fits, fingerprint, read, write
from fscore.snapshot.state import SnapshotError, State, allow, capture, rebuilt, restore

__all__ = ["SNAPSHOT_VERSION", "CourseSnapshot", "SnapshotError", "State", "allow", "capture", "check_fits",
           "fingerprint", "read", "rebuilt", "restore", "write"]

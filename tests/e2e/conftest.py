"""Every service process of these tests signs its messages, as the services do by default.

The keys (the coordinator and participant-00000 .. 00019) are made once per session, and reach
each process through ``FSCOPE_SET``, as a container's environment would give them: the admitted
keys file and the private key of the process's own address. A test that passes
``--set trust.signing=false`` (or its own keys) on the command line overrides it.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator

import pytest

from fscore.cli import main as fscope

#: participants a test course may have; each gets a key
KEYED_PARTICIPANTS = 20


@pytest.fixture(scope="session", autouse=True)
def course_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("keys")
    with contextlib.redirect_stdout(io.StringIO()):
        assert fscope(["keys", "generate", "--out", str(directory), "--participants", str(KEYED_PARTICIPANTS)]) == 0
    sets = f"trust.keys={directory}/admitted.pub;trust.private_key={directory}/{{address}}.key"
    before = os.environ.get("FSCOPE_SET")
    os.environ["FSCOPE_SET"] = f"{before};{sets}" if before else sets
    yield str(directory)
    if before is None:
        os.environ.pop("FSCOPE_SET", None)
    else:
        os.environ["FSCOPE_SET"] = before

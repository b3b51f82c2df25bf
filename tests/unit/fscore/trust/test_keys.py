"""Key files and the admitted-key ring: every bad file is one line naming the file and the line."""

from __future__ import annotations

import pytest

from fscore.cli import main
from fscore.config import load_config
from fscore.errors import ConfigError
from fscore.trust import KeyRing, load_private, public_line, write_pair
from fscore.trust.setup import coordinator_trust, participant_trust
from tests.conftest import ROOT


def test_generate_writes_private_keys_mode_0600_and_an_admission_file(tmp_path, capsys):
    assert main(["keys", "generate", "--out", str(tmp_path), "--participants", "2", "extra"]) == 0
    assert {p.name for p in tmp_path.glob("*.key")} == {"coordinator.key", "participant-00000.key",
                                                        "participant-00001.key", "extra.key"}
    assert (tmp_path / "coordinator.key").stat().st_mode & 0o777 == 0o600
    ring = KeyRing.parse((tmp_path / "admitted.pub").read_text().splitlines(), "admitted.pub")
    assert sorted(ring.keys) == ["coordinator", "extra", "participant-00000", "participant-00001"]
    key = load_private(tmp_path / "extra.key")
    assert public_line(key.public_key(), "extra") in (tmp_path / "admitted.pub").read_text()


@pytest.mark.parametrize(("text", "needle"), [
    ("rsa AAAA p0", "line 1: expected 'ed25519 <base64 key> <address>'"),
    ("ed25519 not-base64! p0", "line 1: the key of 'p0' is not a 32-byte base64"),
    ("ed25519 AAAA p0", "line 1: the key of 'p0' is not a 32-byte base64"),
])
def test_a_malformed_admission_line_is_named(text, needle):
    with pytest.raises(ConfigError, match=r"keys\.pub, line") as err:
        KeyRing.parse(["# admitted", text], "keys.pub")
    assert needle.replace("line 1", "line 2") in str(err.value)


def test_one_address_or_one_key_admitted_twice_is_refused(tmp_path):
    _, line = write_pair(tmp_path, "p0")
    _, other = write_pair(tmp_path, "p1")
    with pytest.raises(ConfigError, match="'p0' is admitted twice"):
        KeyRing.parse([line, other.replace("p1", "p0")], "f")
    with pytest.raises(ConfigError, match="already admitted for 'p0'; one key, one identity"):
        KeyRing.parse([line, line.replace("p0", "p9")], "f")


def _config(*sets: str):
    return load_config(ROOT / "examples" / "digits_fedavg.yaml", ["participants=2", *sets])


def test_services_need_admitted_keys_and_their_own_matching_private_key(tmp_path):
    main(["keys", "generate", "--out", str(tmp_path), "--participants", "2"])
    admitted = f"trust.keys={tmp_path}/admitted.pub"
    with pytest.raises(ConfigError, match=r"^trust.keys: signing is on \(the default for the Kafka services\)"):
        participant_trust(_config(), "participant-00000", [], service=True)
    with pytest.raises(ConfigError, match=r"^trust\.keys: cannot read .*nope\.pub: No such file"):
        participant_trust(_config("trust.keys=nope.pub"), "participant-00000", [], service=True)
    with pytest.raises(ConfigError, match=r"^trust\.private_key: signing is on and participant-00000 has no private"):
        participant_trust(_config(admitted), "participant-00000", [], service=True)
    wrong = _config(admitted, f"trust.private_key={tmp_path}/participant-00001.key")
    with pytest.raises(ConfigError, match="is not the key admitted for participant-00000"):
        participant_trust(wrong, "participant-00000", [], service=True)
    (tmp_path / "broken.key").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    with pytest.raises(ConfigError, match=r"^trust\.private_key: .*broken\.key is not an unencrypted PEM private key"):
        participant_trust(_config(admitted, f"trust.private_key={tmp_path}/broken.key"), "participant-00000", [],
                          service=True)
    good = _config(admitted, f"trust.private_key={tmp_path}/{{address}}.key")
    assert participant_trust(good, "participant-00001", [], service=True).signer is not None
    assert coordinator_trust(good, [], "i1", service=True).verifier.keyring is not None


def test_a_course_that_admits_no_coordinator_is_refused(tmp_path):
    _, line = write_pair(tmp_path, "participant-00000")
    with pytest.raises(ConfigError, match=r"^trust\.admitted: no key is admitted for the coordinator"):
        participant_trust(_config(f"trust.admitted=[{line!r}]"), "participant-00000", [], service=True)


def test_without_signing_a_coordinator_still_signs_with_a_key_of_its_incarnation_only():
    off = _config("trust.signing=false")
    first, second = coordinator_trust(off, [], "a", service=True), coordinator_trust(off, [], "b", service=True)
    assert first.verifier.keyring is None and set(first.verifier.alarm_keys) == {"a"}
    assert first.signer.public_key.public_bytes_raw() != second.signer.public_key.public_bytes_raw()
    assert participant_trust(off, "participant-00000", [], service=True).signer is None
    # standalone simulation derives them from the seed: the same run signs the same way
    sim = coordinator_trust(off, [], "0", service=False), coordinator_trust(off, [], "0", service=False)
    assert sim[0].signer.public_key.public_bytes_raw() == sim[1].signer.public_key.public_bytes_raw()

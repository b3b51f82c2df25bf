#!/usr/bin/env bash
# Make one virtual environment per peer simulator for bench/peers/run.py (issue 19). Not part of tox.
#
#   bash bench/peers/setup.sh [flower] [pfl] [federatedscope]      (default: all three)
#
# Each peer gets $FSCOPE_PEERS_HOME/<peer> (default bench/peers/.venvs/<peer>) with the packages of
# bench/peers/<peer>/requirements.txt. torch is not installed again: a .pth file puts the tox env's
# site-packages (FSCOPE_TORCH_SITE, default: .tox/course's) *after* the venv's own, so a peer's pins win and
# torch, shared by every side, is the very build fscope runs on.
# A peer's bench/peers/<peer>/install.sh, if any, runs next with VENV set. FederatedScope is not on PyPI: its
# install.sh installs the checkout of alibaba/FederatedScope v0.3.0 that FEDERATEDSCOPE_SRC names.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
home="${FSCOPE_PEERS_HOME:-$here/.venvs}"
python="${PYTHON:-python3.11}"
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(flower pfl federatedscope)

torch_site="${FSCOPE_TORCH_SITE:-}"
if [ -z "$torch_site" ]; then
  [ -x "$root/.tox/course/bin/python" ] || (cd "$root" && python3 -m tox -q -e course --notest)
  torch_site="$("$root/.tox/course/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fi

for peer in "${peers[@]}"; do
  req="$here/$peer/requirements.txt"
  [ -f "$req" ] || { echo "setup.sh: no peer '$peer' ($req missing)" >&2; exit 2; }
  venv="$home/$peer"
  echo "== $peer -> $venv"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$torch_site" > "$site/zz_fscope_torch.pth"   # last on sys.path: only what the venv lacks comes from it
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$req"
  # a peer's own extra steps (FederatedScope: its checkout, installed without its old pins)
  if [ -f "$here/$peer/install.sh" ]; then VENV="$venv" bash "$here/$peer/install.sh"; fi
  "$venv/bin/python" "$here/$peer/harness.py" --check
done

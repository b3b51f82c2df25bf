#!/usr/bin/env bash
# Install the FederatedScope v0.3.0 checkout named by FEDERATEDSCOPE_SRC into the peer venv (VENV), without
# its old pins (bench/peers/federatedscope/requirements.txt has what it needs). Run by bench/peers/setup.sh.
#
#   git clone <alibaba/FederatedScope> "$FEDERATEDSCOPE_SRC" && git -C "$FEDERATEDSCOPE_SRC" checkout v0.3.0
set -euo pipefail
: "${VENV:?install.sh: VENV is not set (run it through bench/peers/setup.sh)}"
src="${FEDERATEDSCOPE_SRC:-}"
if [ -z "$src" ]; then
  echo "install.sh: set FEDERATEDSCOPE_SRC to a checkout of alibaba/FederatedScope at tag v0.3.0" >&2; exit 2
fi
init="$src/federatedscope/__init__.py"
if [ ! -f "$src/setup.py" ] || [ ! -f "$init" ] || ! grep -q "^__version__ = '0.3.0'$" "$init"; then
  echo "install.sh: FEDERATEDSCOPE_SRC=$src is not a FederatedScope v0.3.0 checkout (no __version__ = '0.3.0' in $init)" >&2
  exit 2
fi
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  head="$(git -C "$src" rev-parse HEAD)"
  tag="$(git -C "$src" rev-parse -q --verify 'v0.3.0^{commit}' || true)"
  if [ -n "$tag" ] && [ "$head" != "$tag" ]; then
    echo "install.sh: FEDERATEDSCOPE_SRC=$src is at $head, not at tag v0.3.0 ($tag): git -C $src checkout v0.3.0" >&2
    exit 2
  fi
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# setuptools' warnings about setup.py's metadata only matter when the install fails
if ! "$VENV/bin/python" -m pip install -q --no-deps -e "$src" >"$log" 2>&1; then
  cat "$log" >&2
  echo "install.sh: pip install --no-deps -e $src failed" >&2
  exit 1
fi
echo "installed FederatedScope 0.3.0 from $src$(git -C "$src" rev-parse --short HEAD 2>/dev/null | sed 's/^/ @ /')"

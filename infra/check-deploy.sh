#!/usr/bin/env bash
# Offline deployment checks: the SAM template validates and lints (sam
# validate --lint, cfn-lint). With --build, every function is also built as
# the arm64 Lambda bootstrap that `sam build` makes (cargo-lambda, fat LTO:
# about 10 minutes on 2 cores, which is why CI leaves it to a release check
# and to `sam build`). The tools are installed from PyPI into
# target/deploy-tools on first run; no AWS account is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

build=false
case "${1:-}" in
  "") ;;
  --build) build=true ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

TOOLS="${CARGO_TARGET_DIR:-target}/deploy-tools"

# Install pinned tools into the venv once per set of versions.
install() {
  local stamp
  stamp="$TOOLS/installed-$(echo "$*" | tr ' =' '_-')"
  [ -f "$stamp" ] && return
  echo "installing $* into $TOOLS"
  [ -d "$TOOLS/venv" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  touch "$stamp"
}
install aws-sam-cli==1.170.0 cfn-lint==1.58.0
if $build; then
  install cargo-lambda==1.9.2
fi
export PATH="$PWD/$TOOLS/venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0

echo "== sam validate --lint"
sam validate --lint --region us-east-1
echo "== cfn-lint"
cfn-lint template.yaml

if ! $build; then
  exit 0
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null
echo "== cargo lambda build --release --arm64"
cargo lambda build --release --arm64 --locked -p lockstep-functions
for f in users groups discovery job; do
  bootstrap="${CARGO_TARGET_DIR:-target}/lambda/$f/bootstrap"
  test -x "$bootstrap" || { echo "missing $bootstrap" >&2; exit 1; }
  # ELF e_machine 0xB7 is AArch64.
  python3 -c 'import sys; h = open(sys.argv[1], "rb").read(20); sys.exit(0 if h[:4] == b"\x7fELF" and h[18] == 0xB7 else "not an arm64 ELF: " + sys.argv[1])' "$bootstrap"
  printf '%-10s %9s bytes  arm64\n' "$f" "$(stat -c %s "$bootstrap")"
done

#!/usr/bin/env bash
# Installs the coding agents Omen is tested against (Codex CLI, Claude Code) from npm into
# .cache/agents, pinned; a no-op when they are already there at these versions.
#
#   bash scripts/agents.sh [codex] [claude]     (no argument: both)
#
# Prints one `NAME=/absolute/path/to/binary` line per agent on stdout (progress goes to
# stderr), so a caller can read where they are. Only the npm registry is used: both packages
# ship their native binary as an optional platform dependency on npm (@openai/codex-linux-x64,
# @anthropic-ai/claude-code-linux-x64); nothing is downloaded from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."

CODEX_VERSION=0.171.0
CLAUDE_CODE_VERSION=2.1.332
AGENTS_DIR=${OMEN_AGENTS_DIR:-$PWD/.cache/agents}

log() { echo "agents: $*" >&2; }

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(codex claude)

package_of() {
  case "$1" in
    codex) echo "@openai/codex@$CODEX_VERSION" ;;
    claude) echo "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" ;;
    *) log "unknown agent '$1' (codex or claude)"; exit 2 ;;
  esac
}

version_of() {
  case "$1" in
    codex) echo "$CODEX_VERSION" ;;
    claude) echo "$CLAUDE_CODE_VERSION" ;;
  esac
}

# True when the agent's binary runs and reports the pinned version.
installed() {
  local bin="$AGENTS_DIR/node_modules/.bin/$1"
  [ -x "$bin" ] || return 1
  "$bin" --version 2>/dev/null | grep -qF "$(version_of "$1")"
}

# Claude Code's postinstall (install.cjs) copies the platform binary over the bin/claude.exe
# placeholder. npm may skip install scripts (allowScripts); then run it ourselves, as the
# package's own README says to.
finish_claude() {
  local pkg="$AGENTS_DIR/node_modules/@anthropic-ai/claude-code"
  if ! installed claude && [ -f "$pkg/install.cjs" ]; then
    log "running Claude Code's postinstall (links its bundled native binary)"
    (cd "$pkg" && node install.cjs) >&2 || true
  fi
}

mkdir -p "$AGENTS_DIR"
# One installer at a time: pytest workers or two CI jobs may call this together.
exec 9>"$AGENTS_DIR/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

missing=()
for agent in "${wanted[@]}"; do
  package_of "$agent" >/dev/null
  installed "$agent" || missing+=("$agent")
done

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v npm >/dev/null 2>&1; then
    log "npm is not installed; cannot install: ${missing[*]}"
    exit 3
  fi
  packages=()
  for agent in "${missing[@]}"; do packages+=("$(package_of "$agent")"); done
  log "installing ${packages[*]} into $AGENTS_DIR (about 400 MB each, from the npm registry)"
  started=$SECONDS
  npm install --prefix "$AGENTS_DIR" --no-audit --no-fund --loglevel=error "${packages[@]}" >&2
  for agent in "${missing[@]}"; do
    [ "$agent" = claude ] && finish_claude
  done
  log "installed in $((SECONDS - started)) s"
fi

status=0
for agent in "${wanted[@]}"; do
  if installed "$agent"; then
    echo "$agent=$AGENTS_DIR/node_modules/.bin/$agent"
  else
    log "$agent is not runnable at $(version_of "$agent") after npm install"
    status=4
  fi
done
exit $status

#!/usr/bin/env bash
# Runs the whole test suite (installs the Debian packages the reference tests need first).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$root/build/install-deps.sh"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
exec dotnet test "$root/LlmEmbedder.slnx" -c Release --logger "console;verbosity=normal" "$@"

#!/usr/bin/env bash
# The official Bicep compiler, pinned, from NuGet (Azure.Bicep.CommandLine.linux-x64 carries the
# native `bicep` binary in tools/). Fetched once with `dotnet restore` of a throwaway project into
# the NuGet packages folder, then reused.
#
#   dev/bicep.sh check        build and lint the infrastructure CI compiles (see docs/deploy-reference.md)
#   dev/bicep.sh ARGS...      run bicep with ARGS (e.g. dev/bicep.sh --version)
set -euo pipefail
readonly BICEP_VERSION='0.49.2'
readonly PACKAGE='azure.bicep.commandline.linux-x64'
cd "$(dirname "$0")/.."

packages="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
bicep="$packages/$PACKAGE/$BICEP_VERSION/tools/bicep"
if [[ ! -x "$bicep" ]]; then
  if [[ ! -f "$bicep" ]]; then
    project="$(mktemp -d)"
    trap 'rm -rf "$project"' EXIT
    cat >"$project/fetch-bicep.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>netstandard2.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Azure.Bicep.CommandLine.linux-x64" Version="[$BICEP_VERSION]" /></ItemGroup>
</Project>
XML
    DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 \
      dotnet restore "$project/fetch-bicep.csproj" --nologo --verbosity quiet >&2
  fi
  chmod +x "$bicep"
fi

if [[ "${1:-}" != 'check' ]]; then
  exec "$bicep" "$@"
fi

# What CI compiles: every Bicep file but the Graph grant, whose Microsoft Graph extension is
# restored from a container registry these machines cannot reach. `bicep build` fails on errors;
# `bicep lint` exits non-zero on any diagnostic at level error (infra/bicepconfig.json says which).
# Warnings are not accepted either: any line of output fails the check.
"$bicep" --version
status=0
out="$(mktemp -d)"
for file in infra/main.bicep; do
  report="$("$bicep" build "$file" --outdir "$out" 2>&1)" || status=1
  [[ -z "$report" ]] || { printf '%s\n' "$report"; status=1; }
  report="$("$bicep" lint "$file" 2>&1)" || status=1
  [[ -z "$report" ]] || { printf '%s\n' "$report"; status=1; }
done
rm -rf "$out"
if [[ $status -eq 0 ]]; then echo "bicep build and lint: infra/main.bicep and its modules, no finding"; fi
exit $status

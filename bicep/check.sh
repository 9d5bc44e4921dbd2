#!/usr/bin/env bash
# Compiles and lints bicep/main.bicep with the Bicep CLI from NuGet (Azure.Bicep.CommandLine.linux-x64), which
# type-checks property names against its built-in Azure resource types. Any warning fails the check.
# This does not deploy anything: a compiled template can still be refused by Azure (values, quotas, regions).
set -euo pipefail
version=0.49.2
here="$(cd "$(dirname "$0")" && pwd)"
packages="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
bicep="$packages/azure.bicep.commandline.linux-x64/$version/tools/bicep"

if [[ ! -x "$bicep" ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cat > "$work/download.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Azure.Bicep.CommandLine.linux-x64" Version="[$version]" /></ItemGroup>
</Project>
EOF
  dotnet restore "$work/download.csproj" -v q -nologo >/dev/null
  chmod +x "$bicep"
fi

out="$(mktemp)"
"$bicep" build "$here/main.bicep" --stdout >/dev/null 2>"$out" || { cat "$out"; exit 1; }
"$bicep" lint "$here/main.bicep" >>"$out" 2>&1 || { cat "$out"; exit 1; }
if [[ -s "$out" ]]; then cat "$out"; echo "bicep: warnings above" >&2; exit 1; fi
echo "bicep: main.bicep compiles and lints clean (Bicep CLI $version)"

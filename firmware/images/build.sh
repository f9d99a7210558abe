#!/usr/bin/env bash
# Build the MicroPython firmware images in firmware/images/ from the pinned sources (firmware/images/sources.txt).
#
#   firmware/images/build.sh checkout SRC GIT_DIR_PATTERN   check the pinned commits out into SRC, from bare git
#                                                        directories; {owner} and {name} in the pattern stand for
#                                                        the upstream repository, e.g. '/mirrors/{owner}+{name}/repo'
#   firmware/images/build.sh build SRC [BOARD...]           build picotool, mpy-cross and, per board (default RPI_PICO
#                                                        RPI_PICO_W RPI_PICO_PPP; a board in firmware/boards/ is
#                                                        ours, the others upstream's), a base image and a release
#                                                        image (the agent
#                                                        frozen through firmware/manifest.py); copy the UF2s into
#                                                        firmware/images/, and rewrite the generated part of
#                                                        firmware/images/README.md (versions, SHA-256)
#   firmware/images/build.sh record SRC BOARD...            only rewrite that part, for the UF2s already there
#   firmware/images/build.sh build-unix SRC [ARCH...]       build MicroPython's unix port for Linux boards, per
#                                                        architecture (default aarch64 armhf x86_64), statically
#                                                        linked, with the agent frozen; copy the executables into
#                                                        firmware/images/ and rewrite their generated part of
#                                                        firmware/images/README.md
#   firmware/images/build.sh record-unix SRC ARCH...        only rewrite that part, for the executables already there
#
# Needs (Debian): gcc-arm-none-eabi libnewlib-arm-none-eabi cmake build-essential libusb-1.0-0-dev pkg-config python3;
# for build-unix: build-essential gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf
# libc6-dev-armhf-cross (and gcc-x86-64-linux-gnu on a host that is not x86-64).
# Nothing is downloaded: every source comes from SRC. The images are reproducible for the same SRC path and
# toolchain (SOURCE_DATE_EPOCH is the v1.28.0 commit time; the SDK embeds some source paths).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
sources="$here/sources.txt"
# Snapshots of public repositories may lack their largest files (pico-sdk's *.svd, some mbedtls test data);
# none of them is needed to build. Whatever blob a snapshot lacks is left out and listed.
exclude=(':!*.svd')

# pinned: print "folder repository commit" for each pinned source
pinned() {
    grep -v -E '^\s*(#|$)' "$sources"
}

checkout() {
    local src="$1" pattern="$2" folder repo commit owner name gitdir dest
    mkdir -p "$src"
    src="$(cd "$src" && pwd)"
    while read -r folder repo commit; do
        owner="${repo%%/*}"
        name="${repo#*/}"
        gitdir="${pattern//\{owner\}/$owner}"
        gitdir="${gitdir//\{name\}/$name}"
        dest="$src/$folder"
        if [ -f "$dest/.source-commit" ] && [ "$(cat "$dest/.source-commit")" = "$commit" ]; then
            echo "$folder: $commit already checked out"
            continue
        fi
        echo "$folder: $repo $commit from $gitdir"
        mkdir -p "$dest"
        # files the snapshot lacks (see `exclude`): listed, and left out
        local missing=()
        mapfile -t missing < <(git --git-dir="$gitdir" ls-tree -r "$commit" | awk '$2 == "blob" {print $3}' |
            git --git-dir="$gitdir" cat-file --batch-check | awk '$2 == "missing" {print $1}' |
            while read -r blob; do
                git --git-dir="$gitdir" ls-tree -r "$commit" | awk -v b="$blob" '$3 == b {print ":(exclude,literal)" $4}'
            done)
        [ "${#missing[@]}" -eq 0 ] || printf '  left out (not in the snapshot): %s\n' "${missing[@]}"
        # a private index, so the (possibly shared) bare repository is left as it was
        GIT_INDEX_FILE="$src/.index-$$" git --git-dir="$gitdir" --work-tree="$dest" \
            checkout "$commit" -- . "${exclude[@]}" "${missing[@]}"
        rm -f "$src/.index-$$"
        echo "$commit" >"$dest/.source-commit"
    done < <(pinned)
}

# verify SRC: every pinned folder holds its commit
verify() {
    local src="$1" folder repo commit
    while read -r folder repo commit; do
        if [ ! -f "$src/$folder/.source-commit" ] || [ "$(cat "$src/$folder/.source-commit")" != "$commit" ]; then
            echo "$src/$folder is not $repo at $commit: run firmware/images/build.sh checkout first" >&2
            exit 1
        fi
    done < <(pinned)
}

# check_image BIN BOARD FORM: the image is of that board, and holds the agent if and only if it is a release
check_image() {
    local bin="$1" board="$2" form="$3" name
    case "$board" in
        RPI_PICO) name="Raspberry Pi Pico with RP2040" ;;
        RPI_PICO_W) name="Raspberry Pi Pico W with RP2040" ;;
        RPI_PICO_PPP) name="Raspberry Pi Pico (PPP) with RP2040" ;;
        *) name="" ;;
    esac
    if [ -n "$name" ] && ! grep -q -a -F "$name" "$bin"; then
        echo "$bin: not a $board image (no '$name' in it)" >&2
        exit 1
    fi
    if grep -q -a -F "tcagent/agent.py" "$bin"; then
        [ "$form" = release ] || { echo "$bin: a base image with the agent frozen in" >&2; exit 1; }
    else
        [ "$form" = base ] || { echo "$bin: a release image without the agent" >&2; exit 1; }
    fi
}

build() {
    local src="$1"
    shift
    local boards=("$@")
    [ "${#boards[@]}" -gt 0 ] || boards=(RPI_PICO RPI_PICO_W RPI_PICO_PPP)
    src="$(cd "$src" && pwd)"
    verify "$src"
    local mpy="$src/micropython" jobs out="$root/firmware/images"
    jobs="$(nproc)"
    # the build date MicroPython embeds: the tag's commit time, not today
    SOURCE_DATE_EPOCH="$(sed -n "s/^# SOURCE_DATE_EPOCH=\([0-9]*\).*/\1/p" "$sources")"
    export SOURCE_DATE_EPOCH
    # no .git in the checkout: give makeversionhdr.py the tag and hash the checkout holds
    export MICROPY_GIT_TAG=v1.28.0
    MICROPY_GIT_HASH="$(cut -c1-10 "$mpy/.source-commit")"
    export MICROPY_GIT_HASH

    # picotool 2.2.0, once: pico-sdk 2.x needs it to write UF2 files (it would download it otherwise)
    local picotool_install="$src/picotool-install"
    if [ ! -x "$picotool_install/bin/picotool" ]; then
        cmake -S "$src/picotool" -B "$src/picotool-build" -DPICO_SDK_PATH="$mpy/lib/pico-sdk" \
            -DCMAKE_INSTALL_PREFIX="$picotool_install" -DCMAKE_BUILD_TYPE=Release
        cmake --build "$src/picotool-build" -j "$jobs"
        cmake --install "$src/picotool-build"
    fi
    local picotool_dir
    picotool_dir="$(dirname "$(find "$picotool_install" -name picotoolConfig.cmake | head -1)")"

    make -C "$mpy/mpy-cross" -j "$jobs"

    mkdir -p "$out"
    local board form manifest build_dir board_dir
    for board in "${boards[@]}"; do
        # a board of ours (firmware/boards/: upstream's Pico with lwIP and network.PPP) or upstream's
        board_dir="$root/firmware/boards/$board"
        [ -d "$board_dir" ] || board_dir="$mpy/ports/rp2/boards/$board"
        for form in base release; do
            build_dir="$mpy/ports/rp2/build-$board-$form"
            # CMAKE_ARGS on make's command line replaces the port Makefile's own (BOARD, FROZEN_MANIFEST):
            # everything goes in it
            cmake_args="-DMICROPY_BOARD=$board -DMICROPY_BOARD_DIR=$board_dir"
            cmake_args+=" -Dpicotool_DIR=$picotool_dir"
            [ "$form" = release ] && cmake_args+=" -DMICROPY_FROZEN_MANIFEST=$root/firmware/manifest.py"
            # A failed first configure can leave a folder that links an empty image: always start clean.
            rm -rf "$build_dir"
            make -C "$mpy/ports/rp2" -j "$jobs" BOARD="$board" BOARD_DIR="$board_dir" BUILD="$build_dir" \
                CMAKE_ARGS="$cmake_args"
            check_image "$build_dir/firmware.bin" "$board" "$form"
            cp "$build_dir/firmware.uf2" "$out/$board-v1.28.0-$form.uf2"
        done
    done
    record "$out" "$src" "${boards[@]}"
}

# built_by ARGS...: the opening line of a generated part: when, on what, and the build.sh command that made it
built_by() {
    echo "Built $(date -u +%Y-%m-%d) on $(. /etc/os-release && echo "$PRETTY_NAME") $(uname -m) by"
    echo "\`firmware/images/build.sh $*\`:"
}

# agent_digest: one SHA-256 for the agent the release images freeze (firmware/main.py, manifest.py and
# tcagent/**/*.py: the SHA-256 of their sha256sum lines in C order); tests/firmware/test_images.py computes it
# from the tree and fails when the images hold another agent than the tree's
agent_digest() {
    (cd "$root/firmware" && find main.py manifest.py tcagent -name '*.py' -type f | LC_ALL=C sort | xargs sha256sum \
        | sha256sum | cut -d' ' -f1)
}

# file_table FILE...: a Markdown table of each file's size and SHA-256
file_table() {
    local file
    echo "| file | bytes | SHA-256 |"
    echo "|---|---|---|"
    for file in "$@"; do
        echo "| $(basename "$file") | $(stat -c %s "$file") | $(sha256sum "$file" | cut -d' ' -f1) |"
    done
}

# write_generated README MARKER TABLE: put TABLE between README's <!-- MARKER: begin --> and <!-- MARKER: end -->
write_generated() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
path, marker, table = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
begin, end = "<!-- %s: begin -->" % marker, "<!-- %s: end -->" % marker
head, rest = text.split(begin)
tail = rest.split(end)[1]
open(path, "w").write(head + begin + "\n" + table + "\n" + end + tail)
PY
    echo "$1 updated:"
    echo "$3"
}

# record OUT SRC BOARD...: rewrite the generated part of OUT/README.md (toolchain, sources, each file's SHA-256)
record() {
    local out="$1" src="$2"
    shift 2
    local table
    table="$(
        built_by build "$src" "$@"
        echo
        echo "| tool | version |"
        echo "|---|---|"
        echo "| arm-none-eabi-gcc | $(arm-none-eabi-gcc --version | head -1) |"
        echo "| newlib (Debian libnewlib-arm-none-eabi) | $(dpkg-query -W -f '${Version}' libnewlib-arm-none-eabi 2>/dev/null || echo '?') |"
        echo "| cmake | $(cmake --version | head -1) |"
        echo "| make | $(make --version | head -1) |"
        echo "| python3 | $(python3 --version) |"
        echo "| picotool | 2.2.0 (built from the source below) |"
        echo
        echo "| source | repository | commit |"
        echo "|---|---|---|"
        pinned | while read -r folder repo commit; do echo "| $folder | $repo | $commit |"; done
        echo
        echo "The release images freeze the agent of sources digest \`$(agent_digest)\`."
        echo
        file_table "$out"/*.uf2
    )"
    write_generated "$out/README.md" "built" "$table"
}

# ---- the unix port, for Linux boards (Raspberry Pi OS 64-bit and 32-bit, x86-64 PCs) ----

# unix_cross ARCH: the CROSS_COMPILE prefix of Debian's cross compiler for ARCH (none for the host's own)
unix_cross() {
    local host
    host="$(dpkg --print-architecture 2>/dev/null || uname -m)"
    case "$1" in
        aarch64) [ "$host" = arm64 ] || echo aarch64-linux-gnu- ;;
        armhf) [ "$host" = armhf ] || echo arm-linux-gnueabihf- ;;
        x86_64) [ "$host" = amd64 ] || echo x86_64-linux-gnu- ;;
        *) echo "unknown architecture $1: aarch64, armhf or x86_64" >&2; exit 2 ;;
    esac
}

# check_unix_image EXE ARCH: an executable of that architecture, statically linked, with the agent frozen in
check_unix_image() {
    local exe="$1" arch="$2" header machine
    header="$(readelf -h "$exe")"
    case "$arch" in
        aarch64) machine="ELF64 AArch64" ;;
        armhf) machine="ELF32 ARM" ;;
        x86_64) machine="ELF64 Advanced Micro Devices X86-64" ;;
    esac
    if [ "$(echo "$header" | awk -F': *' '/Class:/ {c=$2} /Machine:/ {m=$2} END {print c " " m}')" != "$machine" ]; then
        echo "$exe: not an $arch executable" >&2
        exit 1
    fi
    if readelf -l "$exe" | grep -q "Requesting program interpreter"; then
        echo "$exe: dynamically linked (it must run without the board's libraries)" >&2
        exit 1
    fi
    grep -q -a -F "tcagent/agent.py" "$exe" || { echo "$exe: the agent is not frozen in" >&2; exit 1; }
}

build_unix() {
    local src="$1"
    shift
    local arches=("$@")
    [ "${#arches[@]}" -gt 0 ] || arches=(aarch64 armhf x86_64)
    src="$(cd "$src" && pwd)"
    verify "$src"
    local mpy="$src/micropython" jobs out="$root/firmware/images" arch build_dir
    jobs="$(nproc)"
    SOURCE_DATE_EPOCH="$(sed -n "s/^# SOURCE_DATE_EPOCH=\([0-9]*\).*/\1/p" "$sources")"
    export SOURCE_DATE_EPOCH
    export MICROPY_GIT_TAG=v1.28.0
    MICROPY_GIT_HASH="$(cut -c1-10 "$mpy/.source-commit")"
    export MICROPY_GIT_HASH
    # mpy-cross for the host first: the port's make would otherwise build it with the cross compiler
    make -C "$mpy/mpy-cross" -j "$jobs"
    mkdir -p "$out"
    for arch in "${arches[@]}"; do
        build_dir="$mpy/ports/unix/build-$arch-release"
        rm -rf "$build_dir"
        # The standard variant (asyncio, ssl on mbedTLS, termios, select, socket) without ffi and btree: their
        # libraries (libffi, Berkeley DB) are not among the pinned sources and the agent uses neither.
        # BOARD_DIR names the variant for firmware/manifest.py's include. Static: one file that runs on
        # Raspberry Pi OS (bookworm, glibc 2.36) whatever its libraries, and under qemu-user with no sysroot.
        make -C "$mpy/ports/unix" -j "$jobs" VARIANT=standard BUILD="$build_dir" CROSS_COMPILE="$(unix_cross "$arch")" \
            MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 LDFLAGS_EXTRA=-static \
            BOARD_DIR="$mpy/ports/unix/variants/standard" FROZEN_MANIFEST="$root/firmware/manifest.py"
        check_unix_image "$build_dir/micropython" "$arch"
        cp "$build_dir/micropython" "$out/unix-$arch-v1.28.0-release.elf"
    done
    record_unix "$out" "$src" "${arches[@]}"
}

# record_unix OUT SRC ARCH...: rewrite the unix port's generated part of OUT/README.md
record_unix() {
    local out="$1" src="$2"
    shift 2
    local table arch cc package
    table="$(
        built_by build-unix "$src" "$@"
        echo
        echo "| tool | version |"
        echo "|---|---|"
        for arch in "$@"; do
            cc="$(unix_cross "$arch")gcc"
            echo "| $cc ($arch) | $($cc --version | head -1) |"
        done
        for package in libc6-dev libc6-dev-arm64-cross libc6-dev-armhf-cross; do
            echo "| glibc, static (Debian $package) | $(dpkg-query -W -f '${Version}' "$package" 2>/dev/null || echo 'not installed') |"
        done
        echo "| make | $(make --version | head -1) |"
        echo "| python3 | $(python3 --version) |"
        echo
        echo "| source | repository | commit |"
        echo "|---|---|---|"
        pinned | while read -r folder repo commit; do
            case "$folder" in
                micropython | micropython/lib/micropython-lib | micropython/lib/mbedtls) echo "| $folder | $repo | $commit |" ;;
            esac
        done
        echo
        echo "The executables freeze the agent of sources digest \`$(agent_digest)\`."
        echo
        file_table "$out"/unix-*.elf
    )"
    write_generated "$out/README.md" "built unix" "$table"
}

case "${1:-}" in
    checkout) [ "$#" -eq 3 ] || { echo "usage: $0 checkout SRC GIT_DIR_PATTERN" >&2; exit 2; }
              checkout "$2" "$3" ;;
    build) [ "$#" -ge 2 ] || { echo "usage: $0 build SRC [BOARD...]" >&2; exit 2; }
           shift; build "$@" ;;
    record) [ "$#" -ge 3 ] || { echo "usage: $0 record SRC BOARD..." >&2; exit 2; }
            record "$root/firmware/images" "$2" "${@:3}" ;;
    build-unix) [ "$#" -ge 2 ] || { echo "usage: $0 build-unix SRC [ARCH...]" >&2; exit 2; }
                shift; build_unix "$@" ;;
    record-unix) [ "$#" -ge 3 ] || { echo "usage: $0 record-unix SRC ARCH..." >&2; exit 2; }
                 record_unix "$root/firmware/images" "$2" "${@:3}" ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac

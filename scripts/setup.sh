#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Installs everything LinuxFP's build, tests, benchmarks and demo need on a
# Debian 12 machine (run as root). Idempotent: a second run checks and
# returns in about a second without reinstalling anything.
#
# Called by `cargo xtask setup` (and so by `cargo xtask test` / `demo`).
set -euo pipefail

LLVM_MAJOR=22
BPF_LINKER_VERSION=0.13.0
DEB_PACKAGES=(
  "llvm-${LLVM_MAJOR}-dev" "libpolly-${LLVM_MAJOR}-dev" zlib1g-dev libzstd-dev
  iproute2 iputils-ping ethtool iperf3 nftables iptables tcpdump procps
  conntrack
)

log() { printf '[setup] %s\n' "$*" >&2; }

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    log "must run as root to install: $*"
    exit 1
  fi
}

# --- Debian packages -------------------------------------------------------
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  need_root "${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages: present"
fi

# --- Rust components -------------------------------------------------------
# RUSTUP_AUTO_INSTALL=0 on these machines: nothing is added implicitly, so
# ask for rust-src (needed by -Z build-std=core for the bpf target) explicitly.
if ! rustup component list --installed --toolchain stable 2>/dev/null | grep -q '^rust-src'; then
  log "adding rust-src to the stable toolchain"
  rustup component add rust-src --toolchain stable
else
  log "rust-src: present"
fi

# --- bpf-linker built against the LLVM that matches rustc ------------------
have_linker_version() {
  command -v bpf-linker >/dev/null 2>&1 &&
    bpf-linker --version 2>/dev/null | grep -q "${BPF_LINKER_VERSION}"
}
if ! have_linker_version; then
  log "building bpf-linker ${BPF_LINKER_VERSION} against LLVM ${LLVM_MAJOR} (a few minutes, once)"
  PATH="/usr/lib/llvm-${LLVM_MAJOR}/bin:$PATH" cargo install --locked bpf-linker \
    --version "${BPF_LINKER_VERSION}" --no-default-features --features "llvm-${LLVM_MAJOR}"
else
  log "bpf-linker ${BPF_LINKER_VERSION}: present"
fi

# --- bpffs, where LinuxFP pins its maps -------------------------------------
if [[ $(id -u) -eq 0 ]] && ! mountpoint -q /sys/fs/bpf; then
  log "mounting bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi
log "done"

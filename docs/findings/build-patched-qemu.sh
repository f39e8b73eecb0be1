#!/bin/bash
# Builds Debian's QEMU 7.2 source with the paused re-migration fix (x86_64-softmmu only) and
# writes a wrapper that runs it with Debian's firmware, for `migfuzz confirm --qemu`.
#   docs/findings/build-patched-qemu.sh WORKDIR     (about 30 min on 2 cores)
# Needs a deb-src entry for Debian 12 (bookworm and bookworm-security) in the apt sources.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: $0 WORKDIR}
mkdir -p "$work" && cd "$work"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq meson ninja-build libglib2.0-dev libpixman-1-dev pkg-config flex bison \
  python3-venv zlib1g-dev qemu-system-data seabios >/dev/null
[ -d qemu-7.2+dfsg ] || apt-get source qemu
rm -rf fixed && cp -a qemu-7.2+dfsg fixed && cd fixed
patch -p1 < "$here/virtio-serial-paused-remigration.patch"
mkdir -p build && cd build
../configure --target-list=x86_64-softmmu --without-default-features --enable-tcg \
  --disable-docs --disable-werror
ninja -j"$(nproc)" qemu-system-x86_64
cat > "$work/qemu-fixed" <<WRAP
#!/bin/sh
exec "$work/fixed/build/qemu-system-x86_64" -L /usr/share/qemu -L /usr/share/seabios "\$@"
WRAP
chmod +x "$work/qemu-fixed"
echo "patched QEMU: $work/qemu-fixed (npx migfuzz confirm FILE --qemu $work/qemu-fixed)"

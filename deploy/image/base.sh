#!/usr/bin/env bash
# The Dockerfile's runtime base, made here from Debian's own packages:
#   deploy/image/base.sh [TAG]     # as root; TAG defaults to the Dockerfile's
# What gcr.io/distroless/cc-debian12:nonroot holds and minigate needs: glibc
# and libgcc (libc6, libgcc-s1), the CA certificates (for the platforms'
# HTTPS), tzdata and netbase, a passwd and group with root, nobody and
# nonroot (uid and gid 65532), /tmp and /home/nonroot; no shell, no package
# manager. debootstrap installs Debian 12 into a scratch directory (its
# ca-certificates builds the certificate bundle there); only those
# packages' files are copied out, then imported into podman as TAG. For CI,
# where no image registry is reachable: the image built on it runs the same
# Dockerfile lines as one built on distroless.
set -euo pipefail
source "$(dirname "$0")/podman.sh"
tag=${1:-$(sed -n 's/^FROM \([^ ]*\) AS runtime$/\1/p' "$here/../../Dockerfile")}
[[ $tag ]] || { echo "base.sh: no runtime FROM in the Dockerfile" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/minigate-base.XXXXXX)
trap 'rm -rf "$work"' EXIT

debootstrap --variant=minbase --include=ca-certificates,tzdata,netbase \
  bookworm "$work/chroot" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}

root=$work/root
mkdir -p "$root"/{etc/ssl/certs,home/nonroot,root,tmp,usr/lib,usr/bin,usr/sbin,usr/lib64}
# Debian 12's merged /usr: /lib, /lib64, /bin and /sbin are links into it.
for l in bin lib lib64 sbin; do cp -a "$work/chroot/$l" "$root/$l"; done
# Every file (and link) of the packages, not their directories.
chroot "$work/chroot" dpkg -L libc6 libgcc-s1 tzdata netbase |
  sort -u | while read -r f; do
    src=$work/chroot$f
    if [[ -L $src || -f $src ]]; then
      mkdir -p "$root$(dirname "$f")"
      cp -a "$src" "$root$(dirname "$f")/"
    fi
  done
cp "$work/chroot/etc/ssl/certs/ca-certificates.crt" "$root/etc/ssl/certs/"
cp "$work/chroot/usr/lib/os-release" "$root/etc/os-release"
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
nonroot:x:65532:
GROUP
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
chown 65532:65532 "$root/home/nonroot"

tar -C "$root" --numeric-owner -c . |
  podman import \
    --change 'USER 65532:65532' \
    --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --quiet - "$tag" >/dev/null
echo "base.sh: $tag from Debian bookworm ($(du -sh "$root" | cut -f1))"

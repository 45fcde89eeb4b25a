# Sourced by base.sh and test.sh: podman as it runs on a CI machine, rootful,
# on the vfs storage driver with runc and cgroupfs, and without default
# ulimits (crun, overlay and podman's default ulimits fail inside CI's own
# container). Set by files, not flags, so that every podman the test starts
# runs the same way.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$here/containers.conf"
export CONTAINERS_STORAGE_CONF="$here/storage.conf"

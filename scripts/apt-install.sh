# apt-install.sh - sourced by the install scripts: installs the Debian
# packages they need that are not installed yet. Not executable on its own.
#
#   as_root CMD...       runs CMD as root (directly, or sudo -n)
#   apt_install_missing [--with-recommends] [--no-daemons] PKG...
#                        installs the PKGs dpkg does not list as installed
#                        (an `apt-get update` and a second try when the
#                        first fails on stale package lists), or says they
#                        are all there.  Recommended packages are left out
#                        unless --with-recommends; --no-daemons keeps the
#                        packages' own services from starting (a
#                        policy-rc.d for the duration), for packages whose
#                        tools the tests want but whose daemons they start
#                        themselves, on private ports, or not at all.
#
# Waits up to 10 min for another apt/dpkg run to release its lock.

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

apt_install_missing() {
    local pkg missing=() recommends=--no-install-recommends daemons=1
    local apt=(apt-get -o DPkg::Lock::Timeout=600)
    while [[ ${1:-} == --* ]]; do
        case $1 in
            --with-recommends) recommends=--install-recommends ;;
            --no-daemons) daemons=0 ;;
            *) echo "apt_install_missing: unknown option $1" >&2; return 64 ;;
        esac
        shift
    done
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        echo "apt packages already installed: $*" >&2
        return 0
    fi
    echo "installing: ${missing[*]}" >&2
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [[ $daemons == 0 && ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" > /dev/null
        as_root chmod 755 "$policy"
        made_policy=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q "$recommends" "${missing[@]}" \
        || { as_root "${apt[@]}" update -q && as_root env DEBIAN_FRONTEND=noninteractive \
                "${apt[@]}" install -y -q "$recommends" "${missing[@]}"; } || rc=$?
    [[ $made_policy == 0 ]] || as_root rm -f "$policy"
    return "$rc"
}

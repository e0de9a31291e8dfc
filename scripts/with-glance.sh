# with-glance.sh - sourced by scripts/conformance.sh and scripts/osc-tour.sh:
# a throw-away Glance in Keystone mode next to their throw-away Keystone,
# with one public test image.  Not executable on its own.
#
#   glance_pick_port              sets GLANCE_PORT (a free port) and
#                                 GLANCE_URL; export KEYSTONE_IMAGE_ENDPOINT=
#                                 $GLANCE_URL before `keystone.sh start` so the
#                                 catalog names it (type image, name glance)
#   glance_start DIR KEYSTONE_URL starts scripts/glance.sh's Glance in DIR
#                                 (must not exist) on GLANCE_PORT, tokens
#                                 checked by KEYSTONE_URL with the service user
#                                 clinker (SERVICE_PASSWORD, else
#                                 KEYSTONE_PASSWORD, else secret); a watchdog
#                                 stops it when this shell exits.  An https
#                                 Keystone is trusted through KEYSTONE_TLS_CA
#                                 (scripts/keystone.sh's variable); Glance
#                                 itself speaks plain HTTP.
#   glance_test_image KEYSTONE_URL NAME
#                                 uploads a 1 MiB qcow2 image of random data
#                                 (made with qemu-img) as admin, public;
#                                 sets GLANCE_IMAGE_ID
#   glance_stop DIR               keeps DIR's logs in DIR-logs, stops Glance
#                                 and removes DIR
# The caller provides SCRIPTS (the scripts directory) and say/die.

glance_pick_port() {
    GLANCE_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    GLANCE_URL=http://127.0.0.1:$GLANCE_PORT
}

glance_start() { # dir keystone_url
    KS_URL=$2 KS_CAFILE=${KEYSTONE_TLS_CA:-} KS_USER=clinker KS_PASS=${SERVICE_PASSWORD:-${KEYSTONE_PASSWORD:-secret}} \
        KS_PROJECT=service OWNER_PID=$$ GLANCE_DIR=$1 \
        "$SCRIPTS/glance.sh" up --port "$GLANCE_PORT" --auth keystone > "$1.start.log" 2>&1
}

glance_test_image() { # keystone_url name
    local tmp rc
    command -v qemu-img >/dev/null || { say "qemu-img is missing (apt-get install qemu-utils)"; return 1; }
    tmp=$(mktemp -d) || return 1
    head -c 1048576 /dev/urandom > "$tmp/image.raw" &&
        qemu-img convert -f raw -O qcow2 "$tmp/image.raw" "$tmp/image.qcow2" &&
        GLANCE_IMAGE_ID=$(${KEYSTONE_TLS_CA:+env SSL_CERT_FILE=$KEYSTONE_TLS_CA} \
            python3 "$SCRIPTS/glance-image.py" "$1" "$GLANCE_URL" \
            "$tmp/image.qcow2" qcow2 "$2")
    rc=$?
    rm -rf "$tmp"
    return "$rc"
}

glance_stop() { # dir
    [ -d "$1" ] || return 0
    rm -rf "$1-logs"
    cp -r "$1/log" "$1-logs" 2>/dev/null
    GLANCE_DIR=$1 "$SCRIPTS/glance.sh" down >/dev/null 2>&1
}

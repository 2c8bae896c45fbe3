#!/usr/bin/env bash
# One command for a Docker engine and the project's local images (issue 17).
#
#   scripts/docker-engine.sh            # engine + every local image
#   scripts/docker-engine.sh --engine-only
#
# Idempotent; exits 0 once the engine answers and the images are built.
#  1. Installs Debian's docker.io (dockerd) and debootstrap when missing.
#  2. Starts dockerd when no engine answers: storage driver overlay2, or vfs
#     when overlay2 does not start; its log goes to $CDC_DOCKERD_LOG.
#  3. Builds the local images, each skipped while the hash of its inputs (a
#     label on the image) is unchanged, so a second run takes seconds:
#       cdc-local/debian:bookworm  a debootstrap'ed Debian root filesystem (docker import)
#       cdc-local/node:20          + this machine's Node.js 20 (deploy/local-images/node)
#       cdc-replicator:local       the project's Dockerfile, built on cdc-local/node:20
#     and the service images of the docker sandbox (CDC_SANDBOX=docker,
#     src/sandbox/docker), each from deploy/local-images/<name>:
#       cdc-local/mariadb:10.11    Debian's mariadb-server
#       cdc-local/mysql:8.0.12     MySQL 8.0.12 as the local launcher unpacks it
#       cdc-local/kafka:3.9.1      Kafka's jars as the local launcher resolves them + Debian's JRE
#       cdc-local/redis:7          Debian's redis-server
#     and, for the compose stack's smoke test (test/integration/deploy):
#       cdc-local/prometheus:2     Debian's prometheus (deploy/local-images/prometheus)
#
# No image is pulled: every image is made here from Debian's packages and the
# machine's own Node.js, for machines that reach no image registry. Builds run
# with host networking (no bridge address is used). See docs/DOCKER.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEBIAN_SUITE=${CDC_DEBIAN_SUITE:-bookworm}
DEBIAN_IMAGE=cdc-local/debian:${DEBIAN_SUITE}
NODE_IMAGE=cdc-local/node:20
PROJECT_IMAGE=${CDC_IMAGE:-cdc-replicator:local}
# The docker sandbox falls back to these tags when the upstream images its
# CDC_IMAGE_* variables default to are absent (src/sandbox/docker/images.ts).
MARIADB_IMAGE=cdc-local/mariadb:10.11
MYSQL8_IMAGE=cdc-local/mysql:8.0.12
KAFKA_IMAGE=cdc-local/kafka:3.9.1
REDIS_IMAGE=cdc-local/redis:7
# The compose stack's Prometheus (CDC_COMPOSE_IMAGE_PROMETHEUS in deploy/compose).
PROMETHEUS_IMAGE=cdc-local/prometheus:2
DOCKERD_LOG=${CDC_DOCKERD_LOG:-/var/log/cdc-replicator-dockerd.log}
HASH_LABEL=org.cdc-replicator.input-hash
# Bump to rebuild every local image even when its inputs are unchanged.
RECIPE_VERSION=1

log() { echo "docker-engine: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# One run at a time (CI and a developer, or two test runs, may call this together).
exec 9>"${TMPDIR:-/tmp}/cdc-replicator-docker-engine.lock"
flock -w 1200 9 || die "another run of this script holds ${TMPDIR:-/tmp}/cdc-replicator-docker-engine.lock"

# --- 1. packages ------------------------------------------------------------

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

install_packages() {
  local missing=()
  have dockerd || missing+=(docker.io)
  have docker || missing+=(docker.io)
  # Compose v1 (1.29): the compose stack's smoke test brings deploy/compose up with it.
  have docker-compose || missing+=(docker-compose)
  if [ "${1:-}" = images ]; then have debootstrap || missing+=(debootstrap); fi
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  local packages
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${packages[@]}" >/dev/null
}

# --- 2. the engine ----------------------------------------------------------

engine_answers() { docker info >/dev/null 2>&1; }

# Starts dockerd with one storage driver; 0 once `docker info` answers, 1 if
# dockerd exits or does not answer within a minute.
start_dockerd() {
  local driver=$1 pid
  log "starting dockerd (storage driver $driver, log $DOCKERD_LOG)"
  $SUDO mkdir -p "$(dirname "$DOCKERD_LOG")"
  LOG_OFFSET=$( (stat -c %s "$DOCKERD_LOG" 2>/dev/null || echo 0) | tr -d ' ')
  # setsid: dockerd outlives this script and the shell that ran it; 9>&-: it
  # must not inherit (and so hold forever) this script's lock.
  $SUDO setsid "$(command -v dockerd || echo /usr/sbin/dockerd)" --storage-driver="$driver" \
    >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  for _ in $(seq 1 60); do
    if engine_answers; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "dockerd with $driver exited; last lines of its log:"
      new_log_lines | tail -n 5 >&2
      return 1
    fi
    sleep 1
  done
  log "dockerd with $driver did not answer within 60 s; stopping it"
  $SUDO kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}

# What dockerd logged since the last start_dockerd.
new_log_lines() { tail -c "+$((${LOG_OFFSET:-0} + 1))" "$DOCKERD_LOG" 2>/dev/null || true; }

# Whether process $1 is a live (not zombie) $2. A killed dockerd's pid can
# stay a zombie for a while, and `kill -0` calls a zombie alive.
alive() {
  local stat comm
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  comm=$(ps -o comm= -p "$1" 2>/dev/null) || return 1
  [[ $stat != Z* ]] && [ "$comm" = "$2" ]
}

ensure_engine() {
  if engine_answers; then
    log "engine answers: $(docker info --format '{{.ServerVersion}}, storage driver {{.Driver}}')"
    return 0
  fi
  install_packages "${1:-}"
  if [ -f /var/run/docker.pid ]; then
    local pid
    pid=$(cat /var/run/docker.pid)
    if alive "$pid" dockerd; then
      # Still starting, or stuck: give it the time a start takes, never a second dockerd.
      log "dockerd (pid $pid) runs but does not answer yet; waiting"
      for _ in $(seq 1 60); do
        if engine_answers; then return 0; fi
        sleep 1
      done
      die "dockerd (pid $pid) runs but does not answer; see $DOCKERD_LOG"
    fi
    # Left behind by a dockerd that was killed (a machine's last session ending):
    # a new dockerd refuses to start while it is there.
    $SUDO rm -f /var/run/docker.pid
  fi
  # Likewise its containerd's: a new dockerd would wait for the dead one.
  local containerd_pid=/var/run/docker/containerd/containerd.pid
  if [ -f "$containerd_pid" ] && ! alive "$(cat "$containerd_pid")" containerd; then
    $SUDO rm -f "$containerd_pid"
  fi
  if ! start_dockerd overlay2; then
    # vfs (a full copy per layer: slower, more disk) only when overlay2 itself
    # is what failed, never to hide another problem. Images built under one
    # driver are not seen under the other.
    new_log_lines | grep -qiE 'overlay|storage.driver|graphdriver|driver not supported' ||
      die "dockerd did not start; see $DOCKERD_LOG"
    start_dockerd vfs || die "dockerd did not start with overlay2 or vfs; see $DOCKERD_LOG"
  fi
  log "engine answers: $(docker info --format '{{.ServerVersion}}, storage driver {{.Driver}}')"
}

# --- 3. images --------------------------------------------------------------

# The input-hash label of an image, empty when the image is missing.
image_hash() {
  docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null || true
}

image_id() { docker image inspect --format '{{.Id}}' "$1"; }

# Hash of stdin, 16 hex digits.
hash_stdin() { sha256sum | cut -c1-16; }

# Hash of files (paths relative to the repository), by name and content.
hash_files() { (cd "$ROOT" && LC_ALL=C sort | xargs -d '\n' sha256sum) | hash_stdin; }

# Debian's mirror as this machine's apt knows it (none: debootstrap's default).
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$DEBIAN_SUITE" '
      /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }' "$f" | head -n 1
  done | head -n 1
  [ -f /etc/apt/sources.list ] &&
    awk -v suite="$DEBIAN_SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:/ && $(i + 1) == suite) { print $i; exit } }' \
      /etc/apt/sources.list | head -n 1
  return 0
}

# cdc-local/debian:<suite>: debootstrap --variant=minbase, imported.
build_debian() {
  local hash dir mirror
  hash=$(printf 'debian %s minbase recipe %s\n' "$DEBIAN_SUITE" "$RECIPE_VERSION" | hash_stdin)
  if [ "$(image_hash "$DEBIAN_IMAGE")" = "$hash" ]; then
    log "$DEBIAN_IMAGE is up to date"
    return 0
  fi
  mirror=$(apt_mirror | head -n 1)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/cdc-debootstrap.XXXXXX")
  log "debootstrap $DEBIAN_SUITE (minbase) into $dir ${mirror:+from $mirror}"
  if ! $SUDO debootstrap --variant=minbase "$DEBIAN_SUITE" "$dir/rootfs" ${mirror:+"$mirror"} \
    >"$dir/debootstrap.log" 2>&1; then
    tail -n 20 "$dir/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  $SUDO rm -rf "$dir/rootfs/var/cache/apt/archives/"*.deb "$dir/rootfs/var/lib/apt/lists/"*
  log "importing $DEBIAN_IMAGE"
  $SUDO tar -C "$dir/rootfs" --numeric-owner -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' \
      --change "LABEL $HASH_LABEL=$hash" \
      - "$DEBIAN_IMAGE" >/dev/null
  $SUDO rm -rf "$dir"
}

# cdc-local/node:20: the Debian image plus this machine's Node.js 20 and npm.
# Debian's nodejs package is 18; the node on the PATH (or $CDC_NODE_BINARY) is
# copied in, with the npm beside it.
build_node() {
  local node npm_dir version hash dir cafile
  node=$(readlink -f "${CDC_NODE_BINARY:-$(command -v node)}") || die "no node on the PATH"
  version=$("$node" -p 'process.versions.node')
  case "$version" in
  20.*) ;;
  *) die "$node is Node.js $version; the image needs 20 (set CDC_NODE_BINARY to a Node.js 20 binary)" ;;
  esac
  npm_dir=$(dirname "$(dirname "$node")")/lib/node_modules/npm
  [ -f "$npm_dir/package.json" ] || die "no npm beside $node (looked in $npm_dir)"
  dir=$(mktemp -d "${TMPDIR:-/tmp}/cdc-node-image.XXXXXX")
  # npm in a build trusts what the machine's npm trusts (a proxy's CA, say).
  : >"$dir/npmrc"
  : >"$dir/ca-certificates.crt"
  cafile=$(npm config get cafile 2>/dev/null || true)
  if [ -n "$cafile" ] && [ "$cafile" != null ] && [ -r "$cafile" ]; then
    cp "$cafile" "$dir/ca-certificates.crt"
    echo "cafile=/usr/local/share/cdc-local/ca-certificates.crt" >"$dir/npmrc"
  fi
  hash=$({
    image_id "$DEBIAN_IMAGE"
    sha256sum "$node" "$dir/npmrc" "$dir/ca-certificates.crt" | cut -d' ' -f1
    "$node" -p "require('$npm_dir/package.json').version"
    sha256sum "$ROOT/deploy/local-images/node/Dockerfile" | cut -d' ' -f1
    echo "recipe $RECIPE_VERSION"
  } | hash_stdin)
  if [ "$(image_hash "$NODE_IMAGE")" = "$hash" ]; then
    log "$NODE_IMAGE is up to date (Node.js $version)"
    rm -rf "$dir"
    return 0
  fi
  cp "$ROOT/deploy/local-images/node/Dockerfile" "$dir/Dockerfile"
  install -m 0755 "$node" "$dir/node"
  cp -a "$npm_dir" "$dir/npm"
  log "building $NODE_IMAGE (Node.js $version from $node)"
  build_image "$dir" "$NODE_IMAGE" "$hash" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE"
  rm -rf "$dir"
}

# cdc-replicator:local: the project's Dockerfile with the local Node.js base
# in place of the pinned upstream one.
build_project() {
  local hash
  hash=$({
    image_id "$NODE_IMAGE"
    # What the build context holds (see .dockerignore): manifests, tsconfig, src.
    {
      printf '%s\n' Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json
      (cd "$ROOT" && find src -type f ! -name '*.test.ts')
    } | hash_files
    echo "recipe $RECIPE_VERSION"
  } | hash_stdin)
  if [ "$(image_hash "$PROJECT_IMAGE")" = "$hash" ]; then
    log "$PROJECT_IMAGE is up to date"
    return 0
  fi
  log "building $PROJECT_IMAGE from the Dockerfile on $NODE_IMAGE"
  build_image "$ROOT" "$PROJECT_IMAGE" "$hash" \
    --build-arg "BUILD_IMAGE=$NODE_IMAGE" --build-arg "RUNTIME_IMAGE=$NODE_IMAGE"
}

# A service image of the docker sandbox from deploy/local-images/<recipe>,
# on the Debian image. $3 names the inputs the recipe's files do not cover
# (the copied artifacts); $4, when set, is a function that fills the build
# context (its argument: the context directory).
build_service() {
  local recipe=$1 tag=$2 extra=$3 fill=${4:-} hash dir
  hash=$({
    image_id "$DEBIAN_IMAGE"
    (cd "$ROOT" && find "deploy/local-images/$recipe" -type f) | hash_files
    printf '%s\n' "$extra"
    echo "recipe $RECIPE_VERSION"
  } | hash_stdin)
  if [ "$(image_hash "$tag")" = "$hash" ]; then
    log "$tag is up to date"
    return 0
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/cdc-$recipe-image.XXXXXX")
  cp -a "$ROOT/deploy/local-images/$recipe/." "$dir/"
  if [ -n "$fill" ]; then "$fill" "$dir"; fi
  log "building $tag from deploy/local-images/$recipe"
  build_image "$dir" "$tag" "$hash" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE"
  rm -rf "$dir"
}

# Where the local launcher keeps MySQL 8's tree or Kafka's classpath, fetched
# with Maven when missing (src/sandbox/docker/artifacts-cli.ts).
resolve_artifact() {
  [ -f "$ROOT/dist/sandbox/docker/artifacts-cli.js" ] || die "dist/ lacks the sandbox: run npm run build first"
  node "$ROOT/dist/sandbox/docker/artifacts-cli.js" "$1"
}

build_mariadb() { build_service mariadb "$MARIADB_IMAGE" ""; }
build_redis() { build_service redis "$REDIS_IMAGE" ""; }
build_prometheus() { build_service prometheus "$PROMETHEUS_IMAGE" ""; }

MYSQL8_TREE=""
fill_mysql8() { cp -a "$MYSQL8_TREE" "$1/mysql"; }
build_mysql8() {
  MYSQL8_TREE=$(resolve_artifact mysql8) || die "could not get MySQL 8.0.12's server tree"
  # The tree is versioned by its directory name (mysql-<artifact version>) and never changes.
  build_service mysql8 "$MYSQL8_IMAGE" "$(basename "$MYSQL8_TREE")" fill_mysql8
}

KAFKA_JARS=()
fill_kafka() {
  mkdir -p "$1/libs"
  cp "${KAFKA_JARS[@]}" "$1/libs/"
}
build_kafka() {
  local classpath
  classpath=$(resolve_artifact kafka) || die "could not resolve Kafka's jars"
  mapfile -t KAFKA_JARS < <(tr ':' '\n' <<<"$classpath" | grep -v '^$')
  # Jars in a Maven repository are versioned by their file names.
  build_service kafka "$KAFKA_IMAGE" "$(printf '%s\n' "${KAFKA_JARS[@]##*/}" | LC_ALL=C sort)" fill_kafka
}

# docker build with the classic builder (BuildKit would fetch the Dockerfile
# frontend named by `# syntax=` from a registry) and host networking (npm ci
# reaches the npm registry the way this machine does; no bridge address).
build_image() {
  local context=$1 tag=$2 hash=$3 out old
  shift 3
  old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  out=$(mktemp "${TMPDIR:-/tmp}/cdc-docker-build.XXXXXX")
  if ! DOCKER_BUILDKIT=0 docker build --force-rm --network host --label "$HASH_LABEL=$hash" -t "$tag" "$@" "$context" \
    >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    rm -f "$out"
    die "building $tag failed (last lines above)"
  fi
  rm -f "$out"
  # The image this one replaces, once no tag names it and no container uses
  # it (layers the new one shares stay; so does the builder's step cache).
  if [ -n "$old" ] && [ "$old" != "$(image_id "$tag")" ] &&
    [ "$(docker image inspect --format '{{len .RepoTags}}' "$old" 2>/dev/null)" = 0 ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
}

main() {
  case "${1:-}" in
  --engine-only)
    ensure_engine
    return 0
    ;;
  "") ;;
  *) die "usage: $0 [--engine-only]" ;;
  esac
  local start=$SECONDS step times=""
  for step in ensure_engine build_debian build_node build_project build_mariadb build_mysql8 build_kafka build_redis build_prometheus; do
    local t=$SECONDS
    if [ "$step" = ensure_engine ]; then
      ensure_engine images
      install_packages images
    else
      "$step"
    fi
    times+="${times:+, }${step#*_} $((SECONDS - t)) s"
  done
  log "ready in $((SECONDS - start)) s ($times): $DEBIAN_IMAGE, $NODE_IMAGE, $PROJECT_IMAGE ($(image_id "$PROJECT_IMAGE" | cut -c1-19)), $MARIADB_IMAGE, $MYSQL8_IMAGE, $KAFKA_IMAGE, $REDIS_IMAGE, $PROMETHEUS_IMAGE"
}

main "$@"

# Sourced by the restore bench scripts (benches/*-restore.sh): checks that
# the two brokers of scripts/kafka are named, makes a scratch directory $d
# (removed at exit), and defines `snapshot_into BIN PATTERN`, which takes
# a first snapshot of the matching topics of the source into a new
# repository $d/repo (password "bench").
: "${KVAULT_KAFKA_SOURCE:?start a broker: eval \"\$(scripts/kafka start source)\"}"
: "${KVAULT_KAFKA_TARGET:?start a target: eval \"\$(scripts/kafka start target)\"}"
export KVAULT_PASSWORD=bench
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT

snapshot_into() {
  "$1" -r "$d/repo" --no-progress init >/dev/null
  "$1" -r "$d/repo" --no-progress snapshot -b "$KVAULT_KAFKA_SOURCE" --topic "$2" --group none >/dev/null
}

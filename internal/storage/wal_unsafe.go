//go:build cairn_unsafe_ack

package storage

// disableWAL is true only in a deliberately broken build (go build -tags
// cairn_unsafe_ack) that the robustness suite must catch: with no
// write-ahead log, writes are acknowledged while they exist only in memory,
// and kill -9 loses them. Commits asked to sync do not (Pebble refuses a
// synced commit without a log): they return once in the memtable.
const disableWAL = true

//go:build cairn_unsafe_ack

package storage

// disableWAL is true only in a deliberately broken build (go build -tags
// cairn_unsafe_ack) that the robustness suite must catch: with no
// write-ahead log, writes are acknowledged while they exist only in memory,
// and kill -9 loses them.
const disableWAL = true

//go:build !cairn_unsafe_ack

package storage

// disableWAL is false in every real build: writes reach Pebble's
// write-ahead log, and synced writes reach the disk, before they are
// acknowledged.
const disableWAL = false

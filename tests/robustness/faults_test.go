package robustness

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/batchrepr"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-io/cairn/tests/framework"
)

// fault is one kind of failure. inject applies it, keeps it for the
// profile's fault duration and lifts it, leaving every member running.
type fault struct {
	name   string
	inject func(r *run)
}

var faults = []fault{
	{"kill-leader", func(r *run) { r.killAndRestart(r.leader()) }},
	{"kill-follower", func(r *run) { r.killAndRestart(r.follower()) }},
	{"kill-all", (*run).killAll},
	{"isolate-leader", func(r *run) { r.isolate(r.leader()) }},
	{"isolate-follower", func(r *run) { r.isolate(r.follower()) }},
	{"blackhole", (*run).blackhole},
	{"stall-leader", func(r *run) { r.stall(r.leader()) }},
	{"peer-delay", (*run).delay},
	{"member-replace", (*run).replaceFollower},
	{"wal-torn-tail", func(r *run) { r.damageWALTail(r.follower(), false) }},
	{"wal-garbled-tail", func(r *run) { r.damageWALTail(r.follower(), true) }},
}

func (r *run) leader() *framework.Member { return r.c.Leader(r.t) }

// follower picks a member that is not the leader.
func (r *run) follower() *framework.Member {
	l := r.c.Leader(r.t)
	var others []*framework.Member
	for _, m := range r.c.Members {
		if m != l {
			others = append(others, m)
		}
	}
	return others[r.rng.Intn(len(others))]
}

// killAndRestart kills m with SIGKILL; the others keep serving while it is
// down; then it restarts on its data.
func (r *run) killAndRestart(m *framework.Member) {
	m.Kill(r.t)
	r.logf("killed %s", m.Name())
	r.hold(true)
	m.Restart(r.t)
	r.logf("restarted %s", m.Name())
}

// killAll kills every member, in a random order, and restarts them all.
func (r *run) killAll() {
	members := slices.Clone(r.c.Members)
	r.rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	for _, m := range members {
		m.Kill(r.t)
	}
	r.logf("killed every member")
	timer := time.NewTimer(r.prof.faultFor / 4)
	<-timer.C
	r.c.Restart(r.t)
	r.logf("restarted every member")
}

// isolate cuts m off from the other members, both ways.
func (r *run) isolate(m *framework.Member) {
	r.net.isolate(m.Name())
	r.hold(true)
	r.net.heal()
}

// stall stalls every peer link to and from m: its connections stop
// moving, and stay stuck after the fault is lifted, so m's streams must
// notice for themselves and reconnect for m to rejoin.
func (r *run) stall(m *framework.Member) {
	r.net.stall(m.Name())
	r.hold(true)
	r.net.heal()
}

// blackhole swallows the traffic between the leader and a follower.
func (r *run) blackhole() {
	l, f := r.leader(), r.follower()
	r.net.blackhole(l.Name(), f.Name())
	r.hold(true)
	r.net.heal()
}

// delay adds 20-100ms (plus jitter) to every peer link.
func (r *run) delay() {
	d := time.Duration(20+r.rng.Intn(80)) * time.Millisecond
	r.net.setDelay(d, d/2)
	r.hold(true)
	r.net.heal()
}

// reconfigTimeout bounds a membership change, which members refuse
// ("unhealthy cluster") until every voter has been connected for a while.
const reconfigTimeout = 60 * time.Second

// replaceFollower removes a follower from the cluster, wipes its data
// directory, adds it back as a new member (same name and directory, new
// ports) and starts it with --initial-cluster-state existing; it catches
// up from the leader. Clients and watchers of its slot move to it.
func (r *run) replaceFollower() {
	f := r.follower()
	slot := slices.Index(r.c.Members, f)
	via := r.eps.conn((slot + 1) % len(r.c.Members))
	cc := pb.NewClusterClient(via)
	id := r.ids[f.Name()]
	r.poll(reconfigTimeout, fmt.Sprintf("remove member %s", f.Name()), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := cc.MemberRemove(ctx, &pb.MemberRemoveRequest{ID: id})
		if err != nil && strings.Contains(err.Error(), rpctypes.ErrGRPCMemberNotFound.Error()) {
			return nil // an earlier attempt went through
		}
		return err
	})
	r.logf("removed %s (%x)", f.Name(), id)
	// A removed member stops by itself.
	f.WaitExit(r.t, 60*time.Second)
	if err := os.RemoveAll(f.DataDir()); err != nil {
		r.t.Fatal(err)
	}

	r.c.Members = slices.Delete(r.c.Members, slot, slot+1)
	nm := r.c.NewMember(r.t, f.Name())
	if nm.DataDir() != f.DataDir() {
		r.t.Fatalf("the new member's data directory %s is not the wiped %s", nm.DataDir(), f.DataDir())
	}
	var newID uint64
	r.poll(reconfigTimeout, fmt.Sprintf("add member %s at %s", nm.Name(), nm.AdvertisedPeerURL()), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cc.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{nm.AdvertisedPeerURL()}})
		if err == nil {
			newID = resp.Member.ID
			return nil
		}
		if strings.Contains(err.Error(), rpctypes.ErrGRPCPeerURLExist.Error()) {
			// An earlier attempt went through.
			list, lerr := cc.MemberList(ctx, &pb.MemberListRequest{Linearizable: true})
			if lerr != nil {
				return lerr
			}
			for _, m := range list.Members {
				if slices.Contains(m.PeerURLs, nm.AdvertisedPeerURL()) {
					newID = m.ID
					return nil
				}
			}
		}
		return err
	})
	r.ids[nm.Name()] = newID
	r.net.learn(newID, nm.Name())
	r.logf("added %s back as member %x", nm.Name(), newID)
	nm.Restart(r.t)
	r.c.Members = slices.Insert(r.c.Members, slot, nm)
	if err := r.eps.replace(slot, nm.Endpoint()); err != nil {
		r.t.Fatal(err)
	}
	r.logf("%s serves again", nm.Name())
}

// damageWALTail damages the tail of a member's newest write-ahead log, as
// a crash in the middle of a write leaves it, and restarts the member: it
// must detect the torn record at start, drop it, and catch up from the
// others.
//
// Only records nobody learnt about are damaged, since a member that loses
// raft entries it acknowledged breaks raft's assumptions (raft stops it:
// "tocommit is out of range"), whatever the storage does. So the member's
// messages to the others are cut first, the size of its newest log noted,
// and it keeps receiving and persisting entries until it is killed; what
// it wrote after the mark was never acknowledged. (kill -9 alone cannot
// leave an unsynced tail in the file: Pebble keeps unsynced writes in its
// own buffer and writes them out with the next synced one.) The tail from
// the mark is truncated at a random point, or overwritten from such a
// point with random bytes. If the member wrote nothing after the mark, it
// is restarted and the fault tried again, up to ten times.
func (r *run) damageWALTail(m *framework.Member, garble bool) {
	dir := filepath.Join(m.DataDir(), "member", "db")
	for attempt := 1; ; attempt++ {
		r.net.silence(m.Name())
		mark, err := markWAL(dir)
		if err != nil {
			r.t.Fatal(err)
		}
		r.waitWrites(20, "writes while "+m.Name()+" cannot answer")
		m.Kill(r.t)
		r.net.heal()
		desc, err := damageWAL(dir, mark, r.rng.Int63(), garble)
		if err == nil {
			r.logf("killed %s; %s", m.Name(), desc)
			break
		}
		if !errors.Is(err, errNothingUnacknowledged) || attempt == 10 {
			r.t.Fatalf("damage the write-ahead log of %s: %v", m.Name(), err)
		}
		r.logf("killed %s: %v; restarting it to try again", m.Name(), err)
		m.Restart(r.t)
		r.waitWrites(20, "writes before the next attempt")
	}
	m.Restart(r.t)
	r.logf("restarted %s", m.Name())
}

var errNothingUnacknowledged = errors.New("the member wrote nothing to its log after its messages were cut")

// walMark is a position in a member's newest write-ahead log.
type walMark struct {
	path string
	size int64
}

func markWAL(dir string) (walMark, error) {
	path, err := newestWAL(dir)
	if err != nil {
		return walMark{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return walMark{}, err
	}
	return walMark{path, fi.Size()}, nil
}

// walRecord is one record of a Pebble write-ahead log: a write batch.
type walRecord struct {
	start, end int64 // offsets of its first chunk and the end of its last
	batch      []byte
}

// Pebble's log format (record/record.go): 32 KiB blocks of chunks. A chunk
// header holds a masked CRC-32C of everything after the length field (4
// bytes), the payload length (2) and the chunk's encoding (1); the
// recyclable encodings (5-8) add the low 32 bits of the log number (4), the
// WAL sync encodings (9-12) add that and the offset synced so far (8).
// Within each group of four: a full record, a record's first, middle and
// last chunk.
const walBlockSize = 32 << 10

func walHeaderSize(enc byte) int {
	switch {
	case enc >= 1 && enc <= 4:
		return 7
	case enc >= 5 && enc <= 8:
		return 11
	case enc >= 9 && enc <= 12:
		return 19
	}
	return 0
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// scanWAL returns the complete, valid records of the log file at path, up
// to the first invalid chunk.
func scanWAL(path string) ([]walRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	num, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), ".log"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: not a log file name", path)
	}
	var (
		records []walRecord
		cur     *walRecord
	)
	for block := 0; block < len(data); block += walBlockSize {
		limit := min(block+walBlockSize, len(data))
		pos := block
		for pos+7 <= limit {
			enc := data[pos+6]
			hs := walHeaderSize(enc)
			valid := hs > 0 && pos+hs <= limit
			var length int
			if valid {
				length = int(binary.LittleEndian.Uint16(data[pos+4 : pos+6]))
				valid = pos+hs+length <= limit &&
					(hs == 7 || binary.LittleEndian.Uint32(data[pos+7:pos+11]) == uint32(num)) &&
					binary.LittleEndian.Uint32(data[pos:pos+4]) == maskedCRC(data[pos+6:pos+hs+length])
			}
			if !valid {
				if pos == block || !zeros(data[pos:limit]) {
					return records, nil
				}
				break // the rest of the block is padding
			}
			payload := data[pos+hs : pos+hs+length]
			switch (enc - 1) % 4 {
			case 0, 1: // a full record, or a record's first chunk
				cur = &walRecord{start: int64(pos), batch: append([]byte(nil), payload...)}
			default:
				if cur != nil {
					cur.batch = append(cur.batch, payload...)
				}
			}
			pos += hs + length
			if kind := (enc - 1) % 4; cur != nil && (kind == 0 || kind == 3) { // the record is complete
				cur.end = int64(pos)
				records = append(records, *cur)
				cur = nil
			}
		}
	}
	return records, nil
}

// batchKeys describes the keys a batch writes.
func batchKeys(batch []byte) string {
	r := batchrepr.Read(batch)
	var keys []string
	for {
		_, key, _, ok, err := r.Next()
		if err != nil || !ok {
			return strings.Join(keys, " ")
		}
		keys = append(keys, strconv.QuoteToASCII(string(key)))
	}
}

func zeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// newestWAL returns the path of the highest-numbered *.log in dir.
func newestWAL(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return "", err
	}
	best, bestNum := "", uint64(0)
	for _, p := range names {
		n, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), ".log"), 10, 64)
		if err == nil && (best == "" || n > bestNum) {
			best, bestNum = p, n
		}
	}
	if best == "" {
		return "", fmt.Errorf("no write-ahead log in %s", dir)
	}
	return best, nil
}

// damageWAL damages the records of the newest log in dir that start at or
// after the mark (all of them if the log is newer than the mark's) and
// describes what it did.
func damageWAL(dir string, mark walMark, seed int64, garble bool) (string, error) {
	path, err := newestWAL(dir)
	if err != nil {
		return "", err
	}
	records, err := scanWAL(path)
	if err != nil {
		return "", err
	}
	tail := 0
	if path == mark.path {
		for tail < len(records) && records[tail].start < mark.size {
			tail++
		}
	}
	if tail == len(records) {
		return "", fmt.Errorf("%w (%s: %d records, mark at offset %d)", errNothingUnacknowledged, filepath.Base(path), len(records), mark.size)
	}
	from, end := records[tail].start, records[len(records)-1].end
	cut := from + 1 + seed%max(end-from-1, 1)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	what := fmt.Sprintf("%s: %d records, the last %d written after the member's messages were cut (offsets %d to %d)",
		filepath.Base(path), len(records), len(records)-tail, from, end)
	if !garble {
		if err := f.Truncate(cut); err != nil {
			return "", err
		}
		return fmt.Sprintf("truncated %s at offset %d", what, cut), f.Sync()
	}
	junk := make([]byte, end-cut)
	x := uint64(seed) | 1
	for i := range junk {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		junk[i] = byte(x)
	}
	if _, err := f.WriteAt(junk, cut); err != nil {
		return "", err
	}
	return fmt.Sprintf("overwrote %s from offset %d to its end with random bytes", what, cut), f.Sync()
}

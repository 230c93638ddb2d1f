package v3rpc

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// codecMessages are etcdserverpb messages of every shape the API carries:
// small, nested, and over 1 MiB (which the codec builds in pooled buffers).
func codecMessages() map[string]protoadapt.MessageV1 {
	big := bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16+1) // just over 1 MiB
	kvs := make([]*mvccpb.KeyValue, 300)
	for i := range kvs {
		kvs[i] = &mvccpb.KeyValue{Key: fmt.Appendf(nil, "key-%04d", i), Value: bytes.Repeat([]byte{byte(i)}, 4096), CreateRevision: int64(i + 1), ModRevision: int64(2*i + 1), Version: 3, Lease: 0x1234}
	}
	return map[string]protoadapt.MessageV1{
		"empty put":  &pb.PutRequest{},
		"small put":  &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7, PrevKv: true},
		"range":      &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Limit: 10, Revision: 99, SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_MOD, Serializable: true, KeysOnly: true, MinModRevision: 3},
		"nested txn": &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("c"), Target: pb.Compare_VALUE, Result: pb.Compare_NOT_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte("x")}}}, Success: ops(putOp("a"), delOp("b", "c"), txnOp(ops(rangeOp("d")), ops(putOp("e"))))},
		"response": &pb.TxnResponse{Header: &pb.ResponseHeader{ClusterId: 0xcdf818194e3a8c32, MemberId: 0x8e9e05c52164694d, Revision: 42, RaftTerm: 3}, Succeeded: true, Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 42}, PrevKv: &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("old")}}}},
		}},
		"big put":   &pb.PutRequest{Key: []byte("big"), Value: big},
		"big range": &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 600}, Kvs: kvs, More: true, Count: 1000},
	}
}

// The codec's bytes are those proto.Marshal and gRPC's default codec
// produce, and they decode back to an equal message.
func TestCodecMarshal(t *testing.T) {
	c := Codec()
	def := encoding.GetCodecV2(grpcproto.Name)
	if c.Name() != grpcproto.Name {
		t.Fatalf("Name() = %q, want %q", c.Name(), grpcproto.Name)
	}
	for name, m := range codecMessages() {
		t.Run(name, func(t *testing.T) {
			bs, err := c.Marshal(m)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got := bs.Materialize()
			size := m.(gogoMessage).Size()
			if _, plain := bs[0].(mem.SliceBuffer); plain != mem.IsBelowBufferPoolingThreshold(size) {
				t.Errorf("%d bytes marshalled into a plain slice: %v, want %v", size, plain, !plain)
			}
			bs.Free()

			want, err := proto.Marshal(protoadapt.MessageV2Of(m))
			if err != nil {
				t.Fatalf("proto.Marshal: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("codec and proto.Marshal differ (%d and %d bytes)", len(got), len(want))
			}
			dbs, err := def.Marshal(m)
			if err != nil {
				t.Fatalf("default codec: %v", err)
			}
			if !bytes.Equal(got, dbs.Materialize()) {
				t.Fatal("codec and gRPC's default codec differ")
			}
			dbs.Free()

			back := reflect.New(reflect.TypeOf(m).Elem()).Interface().(protoadapt.MessageV1)
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(got)}, back); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !proto.Equal(protoadapt.MessageV2Of(m), protoadapt.MessageV2Of(back)) {
				t.Fatalf("round trip changed the message: %v", back)
			}
		})
	}
}

// Unmarshal accepts data split over several buffers, and the message does
// not keep references to them: gRPC reuses them once Unmarshal returns.
func TestCodecUnmarshalCopies(t *testing.T) {
	c := Codec()
	for name, m := range codecMessages() {
		t.Run(name, func(t *testing.T) {
			data, err := proto.Marshal(protoadapt.MessageV2Of(m))
			if err != nil {
				t.Fatal(err)
			}
			// Three pieces (fewer if the message is tiny).
			var bs mem.BufferSlice
			rest := bytes.Clone(data)
			for _, cut := range []int{len(data) / 3, len(data) / 3} {
				bs = append(bs, mem.SliceBuffer(rest[:cut]))
				rest = rest[cut:]
			}
			bs = append(bs, mem.SliceBuffer(rest))
			back := reflect.New(reflect.TypeOf(m).Elem()).Interface().(protoadapt.MessageV1)
			if err := c.Unmarshal(bs, back); err != nil {
				t.Fatalf("Unmarshal of %d pieces: %v", len(bs), err)
			}
			if !proto.Equal(protoadapt.MessageV2Of(m), protoadapt.MessageV2Of(back)) {
				t.Fatal("pieced round trip changed the message")
			}

			// One piece is decoded in place; scribbling over it afterwards
			// must not reach the message.
			one := bytes.Clone(data)
			back = reflect.New(reflect.TypeOf(m).Elem()).Interface().(protoadapt.MessageV1)
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(one)}, back); err != nil {
				t.Fatal(err)
			}
			for i := range one {
				one[i] = 0xa5
			}
			if !proto.Equal(protoadapt.MessageV2Of(m), protoadapt.MessageV2Of(back)) {
				t.Fatal("the decoded message shares memory with the input")
			}
		})
	}
}

func TestCodecUnmarshalGarbage(t *testing.T) {
	c := Codec()
	for _, data := range [][]byte{{0xff}, {0x0a, 0x05, 'a'}, {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, &pb.RangeRequest{}); err == nil {
			t.Errorf("Unmarshal(%x) succeeded", data)
		}
	}
}

// Messages that are not etcd's (gRPC health) go through the default codec.
func TestCodecFallback(t *testing.T) {
	c := Codec()
	for _, m := range []proto.Message{
		&healthpb.HealthCheckRequest{Service: "etcdserverpb.KV"},
		&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING},
		&healthpb.HealthCheckResponse{},
	} {
		if _, ok := any(m).(gogoMessage); ok {
			t.Fatalf("%T takes the generated path; the test needs a message that does not", m)
		}
		bs, err := c.Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", m, err)
		}
		got := bs.Materialize()
		bs.Free()
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%T: codec %x, proto.Marshal %x", m, got, want)
		}
		back := m.ProtoReflect().New().Interface()
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(got)}, back); err != nil {
			t.Fatalf("Unmarshal(%T): %v", m, err)
		}
		if !proto.Equal(m, back) {
			t.Fatalf("%T round trip: %v, want %v", m, back, m)
		}
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Fatal("Marshal of a string succeeded")
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer{0x08, 0x01}}, new(int)); err == nil {
		t.Fatal("Unmarshal into an int succeeded")
	}
}

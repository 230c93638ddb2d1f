package cli

import (
	"encoding/json"
	"fmt"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// jsonPrinter prints the response protos with encoding/json on one line, as
// etcdctl does: the field names are the protos' JSON tags, byte strings are
// base64 and --hex changes nothing.
type jsonPrinter struct {
	out, errOut io.Writer
}

func (*jsonPrinter) supports(outputKind) bool { return true }

func (p *jsonPrinter) print(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(p.errOut, err)
		return
	}
	fmt.Fprintln(p.out, string(b))
}

func (p *jsonPrinter) get(r *clientv3.GetResponse)    { p.print((*pb.RangeResponse)(r)) }
func (p *jsonPrinter) put(r *clientv3.PutResponse)    { p.print((*pb.PutResponse)(r)) }
func (p *jsonPrinter) del(r *clientv3.DeleteResponse) { p.print((*pb.DeleteRangeResponse)(r)) }
func (p *jsonPrinter) txn(r *clientv3.TxnResponse)    { p.print((*pb.TxnResponse)(r)) }
func (p *jsonPrinter) endpointHealth(hs []epHealth)   { p.print(hs) }
func (p *jsonPrinter) endpointStatus(sts []epStatus)  { p.print(sts) }

// protobufPrinter writes the binary encoding of key-value response protos.
type protobufPrinter struct {
	out, errOut io.Writer
}

func (*protobufPrinter) supports(k outputKind) bool { return k != endpointOutput }

func (p *protobufPrinter) print(m interface{ Marshal() ([]byte, error) }) {
	b, err := m.Marshal()
	if err != nil {
		fmt.Fprintln(p.errOut, err)
		return
	}
	p.out.Write(b)
}

func (p *protobufPrinter) get(r *clientv3.GetResponse)    { p.print((*pb.RangeResponse)(r)) }
func (p *protobufPrinter) put(r *clientv3.PutResponse)    { p.print((*pb.PutResponse)(r)) }
func (p *protobufPrinter) del(r *clientv3.DeleteResponse) { p.print((*pb.DeleteRangeResponse)(r)) }
func (p *protobufPrinter) txn(r *clientv3.TxnResponse)    { p.print((*pb.TxnResponse)(r)) }
func (p *protobufPrinter) endpointHealth([]epHealth)      {}
func (p *protobufPrinter) endpointStatus([]epStatus)      {}

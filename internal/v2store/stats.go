package v2store

import (
	"encoding/json"
	"sync/atomic"
)

// Stats counts the store's operations, as /v2/stats/store shows them.
// Writes are counted on every member as it applies them, reads on the
// member that serves them. Counters start at zero when the member starts.
type Stats struct {
	GetSuccess              atomic.Uint64
	GetFail                 atomic.Uint64
	SetSuccess              atomic.Uint64
	SetFail                 atomic.Uint64
	DeleteSuccess           atomic.Uint64
	DeleteFail              atomic.Uint64
	UpdateSuccess           atomic.Uint64
	UpdateFail              atomic.Uint64
	CreateSuccess           atomic.Uint64
	CreateFail              atomic.Uint64
	CompareAndSwapSuccess   atomic.Uint64
	CompareAndSwapFail      atomic.Uint64
	CompareAndDeleteSuccess atomic.Uint64
	CompareAndDeleteFail    atomic.Uint64
	ExpireCount             atomic.Uint64
}

// statsJSON is etcd's field order and names.
type statsJSON struct {
	GetSuccess              uint64 `json:"getsSuccess"`
	GetFail                 uint64 `json:"getsFail"`
	SetSuccess              uint64 `json:"setsSuccess"`
	SetFail                 uint64 `json:"setsFail"`
	DeleteSuccess           uint64 `json:"deleteSuccess"`
	DeleteFail              uint64 `json:"deleteFail"`
	UpdateSuccess           uint64 `json:"updateSuccess"`
	UpdateFail              uint64 `json:"updateFail"`
	CreateSuccess           uint64 `json:"createSuccess"`
	CreateFail              uint64 `json:"createFail"`
	CompareAndSwapSuccess   uint64 `json:"compareAndSwapSuccess"`
	CompareAndSwapFail      uint64 `json:"compareAndSwapFail"`
	CompareAndDeleteSuccess uint64 `json:"compareAndDeleteSuccess"`
	CompareAndDeleteFail    uint64 `json:"compareAndDeleteFail"`
	ExpireCount             uint64 `json:"expireCount"`
	Watchers                uint64 `json:"watchers"`
}

// count adds one to ok or fail by err.
func count(err *Error, ok, fail *atomic.Uint64) {
	if err == nil {
		ok.Add(1)
	} else {
		fail.Add(1)
	}
}

// StatsJSON returns the body of /v2/stats/store.
func (s *Store) StatsJSON() []byte {
	st := &s.stats
	b, _ := json.Marshal(statsJSON{
		GetSuccess:              st.GetSuccess.Load(),
		GetFail:                 st.GetFail.Load(),
		SetSuccess:              st.SetSuccess.Load(),
		SetFail:                 st.SetFail.Load(),
		DeleteSuccess:           st.DeleteSuccess.Load(),
		DeleteFail:              st.DeleteFail.Load(),
		UpdateSuccess:           st.UpdateSuccess.Load(),
		UpdateFail:              st.UpdateFail.Load(),
		CreateSuccess:           st.CreateSuccess.Load(),
		CreateFail:              st.CreateFail.Load(),
		CompareAndSwapSuccess:   st.CompareAndSwapSuccess.Load(),
		CompareAndSwapFail:      st.CompareAndSwapFail.Load(),
		CompareAndDeleteSuccess: st.CompareAndDeleteSuccess.Load(),
		CompareAndDeleteFail:    st.CompareAndDeleteFail.Load(),
		ExpireCount:             st.ExpireCount.Load(),
		Watchers:                uint64(s.hub.count.Load()),
	})
	return b
}

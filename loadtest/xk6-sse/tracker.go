package sse

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Payload is the load-test message body the publishers send as the event's data:
//
//	{"c":"<channel>","p":"<publisher>","n":<counter>,"t":<send time, ms since epoch>,"r":1?}
//
// n counts the messages one publisher sent to one channel (1, 2, 3, ...): it is per (c, p), so
// several publishers can share a channel and each stream is still checked exactly. r=1 says
// "the publish before this one failed, do not count the jump as a gap" (the failure is counted
// by the publisher instead). Other fields (padding) are ignored.
type Payload struct {
	C string  `json:"c"`
	P string  `json:"p"`
	N int64   `json:"n"`
	T float64 `json:"t"`
	R int     `json:"r"`
}

// Observation is what one event told the tracker.
type Observation struct {
	Message    bool    // the event carried data
	Tracked    bool    // the data was a Payload
	Gap        int64   // messages of this (c, p) that never arrived before this one
	Duplicate  bool    // n <= the last n seen for (c, p): a repeat or an out-of-order arrival
	Reorder    bool    // the SSE id was not greater than the previous id of the connection
	HasLatency bool    // the payload carried a send time
	LatencyMs  float64 // receive time minus send time
}

// Tracker checks the messages of one subscriber. It outlives a connection when the next one
// resumes with Last-Event-ID (the server must then replay what was missed), and is reset when a
// subscription starts from scratch.
type Tracker struct {
	// Strict: counters start at 1, so the first message of a (c, p) with n > 1 means n-1 lost
	// messages. Only valid when the stream was open before the publishers started.
	Strict bool

	last      map[string]int64
	lastID    eventID
	hasLastID bool
	lastIDRaw string

	Messages, Gaps, Duplicates, Reorders int64
}

// NewTracker returns an empty Tracker.
func NewTracker(strict bool) *Tracker {
	return &Tracker{Strict: strict, last: make(map[string]int64)}
}

// Reset forgets everything (a fresh subscription) and sets the strict mode.
func (t *Tracker) Reset(strict bool) {
	t.Strict = strict
	t.last = make(map[string]int64)
	t.hasLastID = false
	t.lastIDRaw = ""
}

// LastEventID is the id of the last event seen (what a resuming client sends as Last-Event-ID).
func (t *Tracker) LastEventID() string { return t.lastIDRaw }

// eventID is cyclone-sse's "<epoch>-<seq>"; ok is false for ids of any other shape.
type eventID struct {
	epoch string
	seq   uint64
	ok    bool
}

func parseID(s string) eventID {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return eventID{}
	}
	seq, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return eventID{}
	}
	return eventID{epoch: s[:i], seq: seq, ok: true}
}

// Observe records one event received at `now`.
func (t *Tracker) Observe(ev Event, now time.Time) Observation {
	var o Observation
	if ev.HasID && ev.ID != "" {
		id := parseID(ev.ID)
		if id.ok && t.hasLastID && t.lastID.ok && id.epoch == t.lastID.epoch && id.seq <= t.lastID.seq {
			o.Reorder = true
			t.Reorders++
		}
		t.lastID, t.hasLastID, t.lastIDRaw = id, true, ev.ID
	}
	if !ev.HasData {
		return o
	}
	o.Message = true
	t.Messages++
	p, ok := parsePayload(ev.Data)
	if !ok {
		return o
	}
	o.Tracked = true
	if p.T > 0 {
		o.HasLatency = true
		o.LatencyMs = float64(now.UnixNano())/1e6 - p.T
	}
	key := p.C + "\x00" + p.P
	last, seen := t.last[key]
	switch {
	case !seen && (!t.Strict || p.R != 0):
		// baseline: nothing is known about what came before
	case !seen:
		if p.N > 1 {
			o.Gap = p.N - 1
		}
	case p.N <= last:
		o.Duplicate = true
	case p.N > last+1 && p.R == 0:
		o.Gap = p.N - last - 1
	}
	if o.Duplicate {
		t.Duplicates++
		return o // keep the high-water mark
	}
	t.Gaps += o.Gap
	t.last[key] = p.N
	return o
}

func parsePayload(data string) (Payload, bool) {
	if len(data) < 2 || data[0] != '{' {
		return Payload{}, false
	}
	var p Payload
	if err := json.Unmarshal([]byte(data), &p); err != nil || p.N <= 0 {
		return Payload{}, false
	}
	return p, true
}

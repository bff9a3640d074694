package sse

import (
	"fmt"
	"testing"
	"time"
)

func msg(id string, c, p string, n int64, t float64) Event {
	return Event{ID: id, HasID: id != "", HasData: true, Data: fmt.Sprintf(`{"c":%q,"p":%q,"n":%d,"t":%v}`, c, p, n, t), Retry: -1}
}

func TestTrackerInOrder(t *testing.T) {
	tr := NewTracker(true)
	now := time.UnixMilli(1_000_000)
	// Two publishers interleaved on one channel, one on another: every stream is contiguous.
	evs := []Event{
		msg("9-1", "a", "1", 1, 999_990), msg("9-2", "a", "2", 1, 999_990), msg("9-3", "b", "1", 1, 999_990),
		msg("9-5", "a", "1", 2, 999_990), msg("9-9", "a", "2", 2, 999_990), msg("9-10", "b", "1", 2, 999_990),
		{HasComment: true, Retry: -1}, // heartbeat
	}
	for _, ev := range evs {
		o := tr.Observe(ev, now)
		if o.Gap != 0 || o.Duplicate || o.Reorder {
			t.Fatalf("unexpected %+v for %+v", o, ev)
		}
		if ev.HasData && (!o.Tracked || !o.HasLatency || o.LatencyMs != 10) {
			t.Fatalf("payload not tracked: %+v", o)
		}
	}
	if tr.Messages != 6 || tr.Gaps != 0 || tr.Duplicates != 0 || tr.Reorders != 0 || tr.LastEventID() != "9-10" {
		t.Fatalf("totals %+v", tr)
	}
}

func TestTrackerGapsDuplicatesReorders(t *testing.T) {
	tr := NewTracker(false)
	now := time.Now()
	steps := []struct {
		ev           Event
		gap          int64
		dup, reorder bool
		wantTracked  bool
	}{
		{msg("1-10", "a", "1", 5, 0), 0, false, false, true}, // baseline (not strict)
		{msg("1-11", "a", "1", 6, 0), 0, false, false, true},
		{msg("1-14", "a", "1", 9, 0), 2, false, false, true}, // 7 and 8 lost
		{msg("1-15", "a", "1", 9, 0), 0, true, false, true},  // repeated
		{msg("1-16", "a", "1", 8, 0), 0, true, false, true},  // late: still a duplicate/out-of-order
		{msg("1-16", "a", "1", 10, 0), 0, false, true, true}, // id not increasing
		{msg("1-12", "b", "1", 1, 0), 0, false, true, true},  // id going back
		{msg("2-1", "b", "1", 2, 0), 0, false, false, true},  // new epoch: ids restart, no reorder
		{Event{ID: "2-2", HasID: true, HasData: true, Data: "plain text"}, 0, false, false, false},
	}
	for i, s := range steps {
		o := tr.Observe(s.ev, now)
		if o.Gap != s.gap || o.Duplicate != s.dup || o.Reorder != s.reorder || o.Tracked != s.wantTracked {
			t.Fatalf("step %d: got %+v", i, o)
		}
	}
	if tr.Gaps != 2 || tr.Duplicates != 2 || tr.Reorders != 2 || tr.Messages != 9 {
		t.Fatalf("totals gaps=%d dups=%d reorders=%d messages=%d", tr.Gaps, tr.Duplicates, tr.Reorders, tr.Messages)
	}
}

func TestTrackerStrictStart(t *testing.T) {
	tr := NewTracker(true)
	if o := tr.Observe(msg("1-1", "a", "1", 3, 0), time.Now()); o.Gap != 2 {
		t.Fatalf("strict: first n=3 must be a gap of 2, got %+v", o)
	}
	tr.Reset(false)
	if o := tr.Observe(msg("1-1", "a", "1", 3, 0), time.Now()); o.Gap != 0 {
		t.Fatalf("after Reset(false) the first message is a baseline, got %+v", o)
	}
	if tr.Gaps != 2 {
		t.Fatalf("Reset keeps the running totals (they are per VU), got %d", tr.Gaps)
	}
}

func TestTrackerPublishFailureMarker(t *testing.T) {
	tr := NewTracker(true)
	tr.Observe(msg("1-1", "a", "1", 1, 0), time.Now())
	// n=2 failed at the publisher; n=3 carries r=1, so the jump is not a delivery gap.
	ev := Event{ID: "1-2", HasID: true, HasData: true, Data: `{"c":"a","p":"1","n":3,"t":0,"r":1}`}
	if o := tr.Observe(ev, time.Now()); o.Gap != 0 || o.Duplicate {
		t.Fatalf("r=1 must resynchronise: %+v", o)
	}
	if o := tr.Observe(msg("1-3", "a", "1", 5, 0), time.Now()); o.Gap != 1 {
		t.Fatalf("later jumps count again: %+v", o)
	}
}

func TestParseID(t *testing.T) {
	for s, want := range map[string]eventID{
		"1732530000000-42": {epoch: "1732530000000", seq: 42, ok: true},
		"a-b-7":            {epoch: "a-b", seq: 7, ok: true},
		"7":                {},
		"-7":               {},
		"x-":               {},
	} {
		if got := parseID(s); got != want {
			t.Errorf("parseID(%q) = %+v, want %+v", s, got, want)
		}
	}
}

package sse

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.k6.io/k6/js/modulestest"
	"go.k6.io/k6/lib"
	"go.k6.io/k6/metrics"
)

// harness is one VU with the module loaded as the global `sse`, and the samples it emitted.
type harness struct {
	rt      *modulestest.Runtime
	mu      sync.Mutex
	sums    map[string]float64
	counts  map[string]int
	stopped chan struct{}
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	rt := modulestest.NewRuntime(t)
	mi := new(RootModule).NewModuleInstance(rt.VU)
	if err := rt.VU.RuntimeField.Set("sse", mi.Exports().Named); err != nil {
		t.Fatal(err)
	}
	registry := metrics.NewRegistry()
	samples := make(chan metrics.SampleContainer, 100)
	rt.MoveToVUContext(&lib.State{
		Dialer:         &net.Dialer{Timeout: 5 * time.Second},
		Samples:        samples,
		BuiltinMetrics: metrics.RegisterBuiltinMetrics(registry),
		Tags:           lib.NewVUStateTags(registry.RootTagSet()),
	})
	h := &harness{rt: rt, sums: map[string]float64{}, counts: map[string]int{}, stopped: make(chan struct{})}
	go func() {
		defer close(h.stopped)
		for c := range samples {
			h.mu.Lock()
			for _, s := range c.GetSamples() {
				h.sums[s.Metric.Name] += s.Value
				h.counts[s.Metric.Name]++
			}
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(samples); <-h.stopped })
	return h
}

func (h *harness) run(t *testing.T, js string) {
	t.Helper()
	if _, err := h.rt.VU.Runtime().RunString(js); err != nil {
		t.Fatalf("script failed: %v", err)
	}
}

func (h *harness) sum(name string) float64 {
	// Samples are pushed synchronously before sse.open returns, but the reader goroutine above
	// may not have summed the last batch yet.
	time.Sleep(20 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sums[name]
}

func payload(c string, n int) string {
	return fmt.Sprintf(`{"c":%q,"p":"1","n":%d,"t":%d}`, c, n, time.Now().UnixMilli())
}

// server answers like a cyclone-sse edge. mode: "close" ends the stream after the frames,
// "hold" keeps it open. The frames skip n=3 (a gap) and repeat n=4 (a duplicate).
func server(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("status") != "" {
			http.Error(w, "no edge", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "bad accept", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Last-Event-Id", r.Header.Get("Last-Event-ID"))
		fl := w.(http.Flusher) //nolint:forcetypeassert
		_, _ = fmt.Fprint(w, "retry: 2000\n:ok\n\n")
		fl.Flush()
		ns := []int{1, 2, 4, 4, 5}
		if r.URL.Query().Get("resume") == "1" {
			ns = []int{6, 7}
		}
		for i, n := range ns {
			_, _ = fmt.Fprintf(w, "id: 7-%d\ndata: %s\n\n", 10+i, payload("a", n))
			if i == 1 {
				_, _ = fmt.Fprint(w, ":\n\n")
			}
			fl.Flush()
		}
		if r.URL.Query().Get("mode") == "hold" {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOpenTracksAndCloses(t *testing.T) {
	t.Parallel()
	srv := server(t)
	h := newHarness(t)
	h.run(t, strings.ReplaceAll(`
		let seen = 0, opened = 0, errors = 0, comments = 0;
		const res = sse.open("URL/?mode=hold", { timeout: "5s", strict: true, tags: { name: "sub" } }, (client) => {
			client.on("open", () => opened++);
			client.on("error", () => errors++);
			client.on("event", (e) => {
				if (e.comment !== "" || e.data === "") { comments++; return; }
				seen++;
				if (JSON.parse(e.data).n === 5) client.close();
			});
		});
		if (opened !== 1 || errors !== 0) throw new Error("opened=" + opened + " errors=" + errors);
		if (seen !== 5) throw new Error("seen " + seen);
		if (comments !== 2) throw new Error("comments " + comments);
		if (!res.closed || res.timedOut || res.status !== 200) throw new Error(JSON.stringify(res));
		if (res.gaps !== 1 || res.duplicates !== 1 || res.messages !== 5) throw new Error(JSON.stringify(res));
		if (res.lastEventId !== "7-14") throw new Error(res.lastEventId);
	`, "URL", srv.URL))
	if g, d, m := h.sum(MetricGaps), h.sum(MetricDuplicates), h.sum(MetricMessages); g != 1 || d != 1 || m != 5 {
		t.Fatalf("metrics: gaps=%v duplicates=%v messages=%v", g, d, m)
	}
	if n := h.sum(MetricEvent); n != 7 {
		t.Fatalf("sse_event = %v, want 7 (5 messages + 2 comment blocks)", n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts[MetricLatency] != 5 || h.counts[MetricConnectTime] != 1 || h.sums[MetricStreams] != 1 {
		t.Fatalf("latency samples %d, connect samples %d, streams %v", h.counts[MetricLatency], h.counts[MetricConnectTime], h.sums[MetricStreams])
	}
}

func TestOpenTimeoutEndsTheStreamQuietly(t *testing.T) {
	t.Parallel()
	srv := server(t)
	h := newHarness(t)
	start := time.Now()
	h.run(t, strings.ReplaceAll(`
		let errors = 0;
		const res = sse.open("URL/?mode=hold", { timeout: 300 }, (client) => {
			client.on("error", () => errors++);
		});
		if (!res.timedOut || res.closed || errors !== 0 || res.error !== "") throw new Error(JSON.stringify(res));
		if (res.messages !== 5) throw new Error("messages " + res.messages);
	`, "URL", srv.URL))
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("sse.open returned after %v, want ~300ms", d)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	srv := server(t)
	h := newHarness(t)
	h.run(t, strings.ReplaceAll(`
		const kinds = [];
		const on = (client) => client.on("error", (e) => kinds.push(e.kind + ":" + e.error()));
		let res = sse.open("URL/?mode=close", {}, on);     // the server ends the stream
		if (res.messages !== 5 || res.error === "") throw new Error(JSON.stringify(res));
		res = sse.open("URL/?status=503", on);             // params are optional
		if (res.status !== 503) throw new Error(JSON.stringify(res));
		res = sse.open("http://127.0.0.1:1/", on);         // nothing listens
		if (kinds.length !== 3 || !kinds[0].startsWith("eof:") || !kinds[1].startsWith("status:") || !kinds[2].startsWith("connect:"))
			throw new Error(JSON.stringify(kinds));
		let threw = false;
		try { sse.open("URL/", { bogus: 1 }, () => {}); } catch (e) { threw = true; }
		if (!threw) throw new Error("unknown params must throw");
		threw = false;
		try { sse.open("URL/?mode=close", (c) => c.on("event", () => { throw new Error("from handler"); })); } catch (e) { threw = String(e).includes("from handler"); }
		if (!threw) throw new Error("a throwing handler must surface");
	`, "URL", srv.URL))
	if e := h.sum(MetricErrors); e != 3 {
		t.Fatalf("sse_errors = %v, want 3", e)
	}
}

func TestOpenResumeKeepsTracking(t *testing.T) {
	t.Parallel()
	srv := server(t)
	h := newHarness(t)
	h.run(t, strings.ReplaceAll(`
		let res = sse.open("URL/?mode=close", { strict: true }, () => {});
		if (res.gaps !== 1) throw new Error("first " + JSON.stringify(res));
		// Resuming: the tracker continues from n=5, so n=6 is contiguous.
		res = sse.open("URL/?mode=close&resume=1", { headers: { "Last-Event-ID": res.lastEventId } }, () => {});
		if (res.gaps !== 0 || res.messages !== 2 || res.headers["X-Last-Event-Id"] !== "7-14") throw new Error("resume " + JSON.stringify(res));
		// A fresh strict subscription expects n=1 first: n=6 means 5 lost.
		res = sse.open("URL/?mode=close&resume=1", { strict: true }, () => {});
		if (res.gaps !== 5) throw new Error("fresh " + JSON.stringify(res));
	`, "URL", srv.URL))
}

func TestOpenInInitContextFails(t *testing.T) {
	t.Parallel()
	rt := modulestest.NewRuntime(t)
	mi := new(RootModule).NewModuleInstance(rt.VU)
	if err := rt.VU.RuntimeField.Set("sse", mi.Exports().Named); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.VU.Runtime().RunString(`sse.open("http://127.0.0.1:1/", () => {})`); err == nil || !strings.Contains(err.Error(), "init context") {
		t.Fatalf("want an init context error, got %v", err)
	}
}

// Package sse is cyclone-sse's k6 extension, imported in scripts as "k6/x/sse".
//
// Its API follows github.com/phymbert/xk6-sse so scripts read alike:
//
//	const res = sse.open(url, params, (client) => {
//	  client.on('open', () => {});
//	  client.on('event', (e) => {});  // e.id, e.name, e.data, e.comment, e.retry
//	  client.on('error', (e) => {});  // e.error()
//	  client.close();
//	});
//
// sse.open blocks the VU for the life of the stream (one VU = one connection), and returns when
// the script calls client.close(), when params.timeout elapses, when the stream ends or fails
// (after an 'error' event), or when the VU is stopped. Unlike xk6-sse it also checks the stream
// itself — ids strictly increasing per connection, and per (channel, publisher) message counters
// carried in the payload (see Payload) — and emits the metrics below, so a script does not need
// a JS callback per event.
package sse

import (
	"errors"

	"go.k6.io/k6/js/common"
	"go.k6.io/k6/js/modules"
	"go.k6.io/k6/metrics"
)

func init() {
	modules.Register("k6/x/sse", new(RootModule))
}

// Metric names.
const (
	MetricEvent       = "sse_event"        // every dispatched block, heartbeats included (xk6-sse's metric)
	MetricMessages    = "sse_messages"     // events that carried data
	MetricGaps        = "sse_gaps"         // messages that never arrived (per Payload counters)
	MetricDuplicates  = "sse_duplicates"   // messages seen again or out of order
	MetricReorders    = "sse_reorders"     // ids not strictly increasing on one connection
	MetricLatency     = "sse_latency"      // receive time - payload send time (ms)
	MetricStreams     = "sse_streams"      // streams opened (2xx event-stream answers)
	MetricErrors      = "sse_errors"       // failed opens and streams that ended with an error
	MetricConnectTime = "sse_connect_time" // request start -> response headers (ms)
)

type sseMetrics struct {
	event, messages, gaps, duplicates, reorders, streams, errors *metrics.Metric
	latency, connect                                             *metrics.Metric
}

func registerMetrics(vu modules.VU) (*sseMetrics, error) {
	env := vu.InitEnv()
	if env == nil || env.Registry == nil {
		return nil, errors.New("k6/x/sse must be imported in the init context")
	}
	r := env.Registry
	m := &sseMetrics{}
	var err error
	counter := func(name string) *metrics.Metric {
		if err != nil {
			return nil
		}
		var mm *metrics.Metric
		mm, err = r.NewMetric(name, metrics.Counter)
		return mm
	}
	trend := func(name string) *metrics.Metric {
		if err != nil {
			return nil
		}
		var mm *metrics.Metric
		mm, err = r.NewMetric(name, metrics.Trend, metrics.Time)
		return mm
	}
	m.event = counter(MetricEvent)
	m.messages = counter(MetricMessages)
	m.gaps = counter(MetricGaps)
	m.duplicates = counter(MetricDuplicates)
	m.reorders = counter(MetricReorders)
	m.streams = counter(MetricStreams)
	m.errors = counter(MetricErrors)
	m.latency = trend(MetricLatency)
	m.connect = trend(MetricConnectTime)
	return m, err
}

// RootModule is the global module object; it makes one ModuleInstance per VU.
type RootModule struct{}

// ModuleInstance is the module of one VU. Its Tracker survives from one sse.open to the next
// when the next one resumes (Last-Event-ID), so a resumed stream is checked for continuity.
type ModuleInstance struct {
	vu      modules.VU
	metrics *sseMetrics
	tracker *Tracker
}

var (
	_ modules.Module   = &RootModule{}
	_ modules.Instance = &ModuleInstance{}
)

// NewModuleInstance implements modules.Module.
func (*RootModule) NewModuleInstance(vu modules.VU) modules.Instance {
	m, err := registerMetrics(vu)
	if err != nil {
		common.Throw(vu.Runtime(), err)
	}
	return &ModuleInstance{vu: vu, metrics: m, tracker: NewTracker(false)}
}

// Exports implements modules.Instance.
func (mi *ModuleInstance) Exports() modules.Exports {
	return modules.Exports{Named: map[string]any{"open": mi.Open}}
}

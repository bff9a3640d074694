package sse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/grafana/sobek"
	"go.k6.io/k6/js/common"
	"go.k6.io/k6/lib"
	"go.k6.io/k6/lib/types"
	"go.k6.io/k6/metrics"
)

// ErrInInitContext is returned when sse.open is called outside a VU (init context).
var ErrInInitContext = common.NewInitContextError("sse.open is not supported in the init context")

// openParams are sse.open's parsed arguments.
type openParams struct {
	setup   sobek.Callable
	method  string
	body    string
	headers http.Header
	timeout time.Duration
	strict  bool
	tags    metrics.TagsAndMeta
}

// client is the object handed to the setup callback.
type client struct {
	handlers map[string][]sobek.Callable
	closed   bool
	cancel   context.CancelFunc
}

func (c *client) on(name string, fn sobek.Value) error {
	f, ok := sobek.AssertFunction(fn)
	if !ok {
		return fmt.Errorf("client.on(%q): the handler is not a function", name)
	}
	switch name {
	case "open", "event", "error":
	default:
		return fmt.Errorf("client.on: unknown event %q (use 'open', 'event' or 'error')", name)
	}
	c.handlers[name] = append(c.handlers[name], f)
	return nil
}

func (c *client) close() {
	c.closed = true
	if c.cancel != nil {
		c.cancel()
	}
}

func (c *client) emit(name string, arg sobek.Value) error {
	for _, h := range c.handlers[name] {
		if _, err := h(sobek.Undefined(), arg); err != nil {
			return err
		}
	}
	return nil
}

// result is what sse.open returns.
type result struct {
	url, errMsg, lastEventID                     string
	status                                       int
	headers                                      map[string]string
	timedOut, closed                             bool
	events, messages, gaps, duplicates, reorders int64
}

func (r *result) value(rt *sobek.Runtime) sobek.Value {
	o := rt.NewObject()
	set := func(k string, v any) { _ = o.Set(k, v) }
	set("url", r.url)
	set("status", r.status)
	if r.headers == nil {
		r.headers = map[string]string{}
	}
	set("headers", r.headers)
	set("error", r.errMsg)
	set("timedOut", r.timedOut)
	set("closed", r.closed)
	set("lastEventId", r.lastEventID)
	set("events", r.events)
	set("messages", r.messages)
	set("gaps", r.gaps)
	set("duplicates", r.duplicates)
	set("reorders", r.reorders)
	return o
}

type received struct {
	ev Event
	at time.Time
}

// Open implements sse.open(url, [params], setup). See the package comment.
//
// params: method, body, headers (object), tags (object), timeout (duration string such as "30s"
// or milliseconds; bounds the whole stream, connect included; reaching it ends the stream
// normally), strict (bool: the stream opens before any tracked message is published, so every
// (channel, publisher) counter must start at 1). A Last-Event-ID header resumes: the tracker
// keeps the previous stream's state and checks continuity; without it the tracker starts afresh.
func (mi *ModuleInstance) Open(url string, args ...sobek.Value) (sobek.Value, error) {
	state := mi.vu.State()
	if state == nil {
		return nil, ErrInInitContext
	}
	rt := mi.vu.Runtime()
	p, err := parseOpenArgs(state, rt, args)
	if err != nil {
		return nil, err
	}

	vuCtx := mi.vu.Context()
	var (
		ctx    context.Context
		cancel context.CancelFunc
	)
	if p.timeout > 0 {
		ctx, cancel = context.WithTimeout(vuCtx, p.timeout)
	} else {
		ctx, cancel = context.WithCancel(vuCtx)
	}
	defer cancel()

	c := &client{handlers: map[string][]sobek.Callable{}, cancel: cancel}
	obj := rt.NewObject()
	_ = obj.Set("on", c.on)
	_ = obj.Set("close", c.close)
	res := &result{url: url}

	// Handlers first, so a failed connect reaches the 'error' handler.
	if _, err := p.setup(sobek.Undefined(), obj); err != nil {
		return nil, err
	}
	if c.closed {
		res.closed = true
		return res.value(rt), nil
	}

	if p.headers.Get("Last-Event-ID") == "" {
		mi.tracker.Reset(p.strict)
	}
	before := *mi.tracker

	push := func(now time.Time, pairs ...any) {
		samples := make(metrics.Samples, 0, len(pairs)/2)
		for i := 0; i+1 < len(pairs); i += 2 {
			samples = append(samples, metrics.Sample{
				TimeSeries: metrics.TimeSeries{Metric: pairs[i].(*metrics.Metric), Tags: p.tags.Tags}, //nolint:forcetypeassert
				Time:       now,
				Metadata:   p.tags.Metadata,
				Value:      pairs[i+1].(float64), //nolint:forcetypeassert
			})
		}
		metrics.PushIfNotDone(vuCtx, state.Samples, samples)
	}
	m := mi.metrics
	fail := func(kind string, err error) (sobek.Value, error) {
		res.errMsg = err.Error()
		push(time.Now(), m.errors, 1.0)
		if e := c.emit("error", errorValue(rt, kind, err)); e != nil {
			return nil, e
		}
		return res.value(rt), nil
	}

	var body io.Reader
	if p.body != "" {
		body = strings.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, url, body)
	if err != nil {
		return fail("request", err)
	}
	req.Header = p.headers
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")

	var tlsConfig *tls.Config
	if state.TLSConfig != nil {
		tlsConfig = state.TLSConfig.Clone()
		tlsConfig.NextProtos = []string{"http/1.1"}
	}
	transport := &http.Transport{
		DialContext:        state.Dialer.DialContext,
		Proxy:              http.ProxyFromEnvironment,
		TLSClientConfig:    tlsConfig,
		DisableCompression: true,                                                   // a compressed event stream would be buffered by the decoder
		DisableKeepAlives:  true,                                                   // one stream per connection; nothing to reuse it for
		TLSNextProto:       map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}
	defer transport.CloseIdleConnections()

	start := time.Now()
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		if c.closed {
			res.closed = true
			return res.value(rt), nil
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.timedOut = true
		}
		return fail("connect", err)
	}
	defer func() { _ = resp.Body.Close() }()
	now := time.Now()
	res.status = resp.StatusCode
	res.headers = make(map[string]string, len(resp.Header))
	for k, vs := range resp.Header {
		res.headers[k] = strings.Join(vs, ", ")
	}
	push(now, m.connect, metrics.D(now.Sub(start)))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fail("status", fmt.Errorf("unexpected status %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/event-stream") {
		return fail("status", fmt.Errorf("unexpected content type %q", ct))
	}
	// Zero samples, so thresholds on these counters are evaluated even when nothing goes wrong.
	push(now, m.streams, 1.0, m.gaps, 0.0, m.duplicates, 0.0, m.reorders, 0.0)
	if err := c.emit("open", res.value(rt)); err != nil {
		return nil, err
	}

	events := make(chan received, 1024)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		parser := NewParser(resp.Body, 0)
		for {
			ev, err := parser.Next()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case events <- received{ev: ev, at: time.Now()}:
			case <-done:
				return
			}
		}
	}()

	handle := func(r received) error {
		o := mi.tracker.Observe(r.ev, r.at)
		pairs := make([]any, 0, 12)
		pairs = append(pairs, m.event, 1.0)
		if o.Message {
			pairs = append(pairs, m.messages, 1.0)
		}
		if o.Gap > 0 {
			pairs = append(pairs, m.gaps, float64(o.Gap))
		}
		if o.Duplicate {
			pairs = append(pairs, m.duplicates, 1.0)
		}
		if o.Reorder {
			pairs = append(pairs, m.reorders, 1.0)
		}
		if o.HasLatency {
			pairs = append(pairs, m.latency, o.LatencyMs)
		}
		push(r.at, pairs...)
		res.events++
		if len(c.handlers["event"]) > 0 {
			return c.emit("event", eventValue(rt, r.ev))
		}
		return nil
	}
	finish := func() {
		t := mi.tracker
		res.lastEventID = t.LastEventID()
		res.messages = t.Messages - before.Messages
		res.gaps = t.Gaps - before.Gaps
		res.duplicates = t.Duplicates - before.Duplicates
		res.reorders = t.Reorders - before.Reorders
	}
	defer finish()

	for {
		select {
		case r := <-events:
			if err := handle(r); err != nil {
				return nil, err
			}
			if c.closed {
				res.closed = true
				finish()
				return res.value(rt), nil
			}
		case err := <-readErr:
			// The reader queued every event it parsed before failing: count them first.
			for drained := false; !drained; {
				select {
				case r := <-events:
					if err := handle(r); err != nil {
						return nil, err
					}
				default:
					drained = true
				}
			}
			finish()
			switch {
			case c.closed:
				res.closed = true
				return res.value(rt), nil
			case vuCtx.Err() != nil: // the VU is stopping
				return res.value(rt), nil
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				res.timedOut = true
				return res.value(rt), nil
			case errors.Is(err, io.EOF):
				return fail("eof", errors.New("the server ended the stream"))
			default:
				return fail("stream", err)
			}
		}
	}
}

func errorValue(rt *sobek.Runtime, kind string, err error) sobek.Value {
	o := rt.NewObject()
	msg := err.Error()
	_ = o.Set("error", func() string { return msg }) // xk6-sse scripts call e.error()
	_ = o.Set("message", msg)
	_ = o.Set("kind", kind)
	return o
}

func eventValue(rt *sobek.Runtime, ev Event) sobek.Value {
	o := rt.NewObject()
	_ = o.Set("id", ev.ID)
	_ = o.Set("name", ev.Name)
	_ = o.Set("data", ev.Data)
	_ = o.Set("comment", ev.Comment)
	_ = o.Set("retry", ev.Retry)
	return o
}

func parseOpenArgs(state *lib.State, rt *sobek.Runtime, args []sobek.Value) (*openParams, error) {
	var paramsV, setupV sobek.Value
	switch len(args) {
	case 1:
		setupV = args[0]
	case 2:
		paramsV, setupV = args[0], args[1]
	default:
		return nil, errors.New("sse.open(url, [params], setup): wrong number of arguments")
	}
	setup, ok := sobek.AssertFunction(setupV)
	if !ok {
		return nil, errors.New("sse.open: the last argument must be a function")
	}
	p := &openParams{setup: setup, method: http.MethodGet, headers: http.Header{}, tags: state.Tags.GetCurrentValues()}
	if ua := state.Options.UserAgent; ua.Valid && ua.String != "" {
		p.headers.Set("User-Agent", ua.String)
	}
	if paramsV == nil || sobek.IsUndefined(paramsV) || sobek.IsNull(paramsV) {
		return p, nil
	}
	params := paramsV.ToObject(rt)
	for _, k := range params.Keys() {
		v := params.Get(k)
		if sobek.IsUndefined(v) || sobek.IsNull(v) {
			continue
		}
		switch k {
		case "method":
			p.method = strings.ToUpper(strings.TrimSpace(v.String()))
		case "body":
			p.body = v.String()
		case "headers":
			h := v.ToObject(rt)
			for _, name := range h.Keys() {
				p.headers.Set(name, h.Get(name).String())
			}
		case "tags":
			if err := common.ApplyCustomUserTags(rt, &p.tags, v); err != nil {
				return nil, fmt.Errorf("sse.open: invalid tags: %w", err)
			}
		case "timeout":
			d, err := types.GetDurationValue(v.Export())
			if err != nil {
				return nil, fmt.Errorf("sse.open: invalid timeout: %w", err)
			}
			p.timeout = d
		case "strict":
			p.strict = v.ToBoolean()
		default:
			return nil, fmt.Errorf("sse.open: unknown param %q", k)
		}
	}
	return p, nil
}

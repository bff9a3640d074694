package sse

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func parseAll(t *testing.T, r io.Reader) []Event {
	t.Helper()
	p := NewParser(r, 0)
	var out []Event
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, ev)
	}
}

func TestParserCycloneFrames(t *testing.T) {
	stream := "retry: 2000\n:ok\n\n" +
		"id: 1732530000000-7\nevent: price\ndata: {\"c\":\"a\",\"n\":1}\n\n" +
		":\n\n" +
		"id: 1732530000000-8\ndata: line one\ndata: line two\n\n"
	got := parseAll(t, strings.NewReader(stream))
	want := []Event{
		{Retry: 2000, Comment: "ok", HasComment: true},
		{ID: "1732530000000-7", HasID: true, Name: "price", Data: `{"c":"a","n":1}`, HasData: true, Retry: -1},
		{Comment: "", HasComment: true, Retry: -1},
		{ID: "1732530000000-8", HasID: true, Data: "line one\nline two", HasData: true, Retry: -1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

func TestParserLineEndingsAndByteByByte(t *testing.T) {
	// The same two events with LF, CRLF and lone CR endings, fed whole and one byte at a time
	// (a CR at the end of one read and its LF at the start of the next must not make a blank line).
	for name, eol := range map[string]string{"LF": "\n", "CRLF": "\r\n", "CR": "\r"} {
		stream := "\xEF\xBB\xBFid: 1-1" + eol + "data: x" + eol + eol + "data:y" + eol + "data" + eol + eol
		want := []Event{
			{ID: "1-1", HasID: true, Data: "x", HasData: true, Retry: -1},
			{Data: "y\n", HasData: true, Retry: -1},
		}
		for _, mode := range []string{"whole", "bytes"} {
			var r io.Reader = strings.NewReader(stream)
			if mode == "bytes" {
				r = iotest.OneByteReader(r)
			}
			if got := parseAll(t, r); !reflect.DeepEqual(got, want) {
				t.Errorf("%s/%s: got %#v want %#v", name, mode, got, want)
			}
		}
	}
}

func TestParserFieldRules(t *testing.T) {
	stream := "data:  two spaces\n" + // only one space is stripped
		"foo: ignored\n" + // unknown field
		"retry: 12x\n" + // invalid retry ignored
		"id: a\x00b\n" + // id with NUL ignored
		"event:\n" + // empty value
		": comment one\n:comment two\n\n" +
		"\n\n" + // blank lines between blocks dispatch nothing
		"data: unterminated\n" // EOF inside a block: not dispatched
	got := parseAll(t, strings.NewReader(stream))
	want := []Event{{Data: " two spaces", HasData: true, Comment: "comment one\ncomment two", HasComment: true, Retry: -1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v want %#v", got, want)
	}
}

func TestParserLongLinesAndLimit(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // longer than the initial buffer
	got := parseAll(t, strings.NewReader("data: "+long+"\n\n"))
	if len(got) != 1 || got[0].Data != long {
		t.Fatalf("long line not parsed whole (got %d events)", len(got))
	}
	p := NewParser(strings.NewReader("data: "+long+"\n\n"), 1024)
	if _, err := p.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("want ErrLineTooLong, got %v", err)
	}
}

func TestParserReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom))
	p := NewParser(r, 0)
	if ev, err := p.Next(); err != nil || ev.Data != "a" {
		t.Fatalf("first event: %#v %v", ev, err)
	}
	if _, err := p.Next(); !errors.Is(err, boom) {
		t.Fatalf("want the read error, got %v", err)
	}
}

func BenchmarkParser(b *testing.B) {
	frame := "id: 1732530000000-123456\ndata: {\"c\":\"lt-0\",\"p\":\"3\",\"n\":42,\"t\":1732530000123.5}\n\n"
	stream := strings.Repeat(frame, 1000)
	b.SetBytes(int64(len(stream)))
	for i := 0; i < b.N; i++ {
		p := NewParser(strings.NewReader(stream), 0)
		for {
			if _, err := p.Next(); err != nil {
				break
			}
		}
	}
}

package sse

import (
	"bytes"
	"errors"
	"io"
	"strconv"
)

// Event is one dispatched Server-Sent Event block (everything up to a blank line).
//
// Unlike a browser EventSource, blocks without data are dispatched too (as xk6-sse does), so a
// heartbeat comment (":\n\n") arrives as an Event with HasComment set and empty Data.
type Event struct {
	ID         string // value of the last "id" field of the block ("" when HasID is false)
	HasID      bool
	Name       string // "event" field
	Data       string // "data" fields joined by "\n"
	HasData    bool
	Comment    string // comment lines (":..."), joined by "\n"
	HasComment bool
	Retry      int // "retry" field in ms, -1 when absent or invalid
}

// ErrLineTooLong is returned when a single line exceeds the parser's limit.
var ErrLineTooLong = errors.New("sse: line too long")

// Parser reads Server-Sent Events from a stream, following the WHATWG event-stream grammar:
// lines end in CRLF, LF or a lone CR; "field:value" with one optional space after the colon;
// a line without a colon is a field with an empty value; unknown fields are ignored; a leading
// UTF-8 BOM is skipped; a block ends at an empty line. A block still open at EOF is discarded
// (the spec's rule: an incomplete event is not dispatched).
type Parser struct {
	r          io.Reader
	buf        []byte
	start, end int   // unread bytes are buf[start:end]
	err        error // sticky read error, returned once the buffer is drained
	maxLine    int
	skipLF     bool // the previous line ended in CR: a following LF belongs to it
	started    bool // BOM check done
}

// NewParser returns a Parser reading from r. maxLine bounds one line (0 = 1 MiB).
func NewParser(r io.Reader, maxLine int) *Parser {
	if maxLine <= 0 {
		maxLine = 1 << 20
	}
	return &Parser{r: r, buf: make([]byte, 32<<10), maxLine: maxLine}
}

// indexEOL is the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	scope := b
	if lf >= 0 {
		scope = b[:lf]
	}
	if cr := bytes.IndexByte(scope, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// readLine returns the next line without its terminator. The slice is valid until the next call.
// An unterminated last line before EOF is dropped.
func (p *Parser) readLine() ([]byte, error) {
	for {
		if p.skipLF && p.start < p.end {
			if p.buf[p.start] == '\n' {
				p.start++
			}
			p.skipLF = false
		}
		if i := indexEOL(p.buf[p.start:p.end]); i >= 0 {
			line := p.buf[p.start : p.start+i]
			p.skipLF = p.buf[p.start+i] == '\r'
			p.start += i + 1
			if len(line) > p.maxLine {
				return nil, ErrLineTooLong
			}
			return line, nil
		}
		if p.err != nil {
			return nil, p.err
		}
		if p.end-p.start > p.maxLine {
			return nil, ErrLineTooLong
		}
		if p.start > 0 {
			p.end = copy(p.buf, p.buf[p.start:p.end])
			p.start = 0
		}
		if p.end == len(p.buf) {
			grown := make([]byte, 2*len(p.buf))
			copy(grown, p.buf[:p.end])
			p.buf = grown
		}
		n, err := p.r.Read(p.buf[p.end:])
		p.end += n
		if err != nil {
			p.err = err
		}
	}
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// Next returns the next event block. It returns io.EOF (or the read error) when the stream ends.
func (p *Parser) Next() (Event, error) {
	ev := Event{Retry: -1}
	var data, comment []byte
	seen := false
	for {
		line, err := p.readLine()
		if err != nil {
			return Event{}, err
		}
		if !p.started {
			p.started = true
			line = bytes.TrimPrefix(line, bom)
		}
		if len(line) == 0 {
			if !seen {
				continue // blank lines between blocks
			}
			if ev.HasData {
				ev.Data = string(data)
			}
			if ev.HasComment {
				ev.Comment = string(comment)
			}
			return ev, nil
		}
		seen = true
		if line[0] == ':' {
			if ev.HasComment {
				comment = append(comment, '\n')
			}
			ev.HasComment = true
			comment = append(comment, bytes.TrimPrefix(line[1:], []byte(" "))...)
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if ev.HasData {
				data = append(data, '\n')
			}
			ev.HasData = true
			data = append(data, value...)
		case "id":
			if bytes.IndexByte(value, 0) < 0 { // the spec ignores ids containing NUL
				ev.ID, ev.HasID = string(value), true
			}
		case "event":
			ev.Name = string(value)
		case "retry":
			if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 && isDigits(value) {
				ev.Retry = n
			}
		}
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

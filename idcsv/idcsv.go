// Package idcsv reads lists of user IDs from CSV files as people export
// them from spreadsheets and warehouses: UTF-8 with or without a byte-order
// mark; comma, semicolon or tab separated; one ID a row, or a header row
// with a user_id (or userId, or id) column among others.
//
// It streams: memory stays bounded by the longest line, whatever the file's
// size. A bad row (an empty or over-long ID, control characters, a wrong
// number of columns, an unterminated quote) is reported with its line
// number, the offending value and the reason, and reading goes on with the
// next row.
//
// Quoted fields follow RFC 4180 within a line ("a ""quoted"" id"), but a
// row is one line: a quoted field cannot span lines. User-ID lists have no
// use for line breaks inside a field, and keeping a row on one line means a
// stray quote spoils one row instead of swallowing the rest of the file.
package idcsv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/segmentd/segmentd"
)

// Limits of a row.
const (
	MaxIDLen   = 256      // bytes in a user ID, as everywhere in segmentd
	MaxLineLen = 64 << 10 // bytes in a line
	maxValue   = 200      // bytes of an offending value quoted in a report
)

// Row is one data row: a user ID, or, when Err is set, a bad row.
type Row struct {
	Line int    // 1-based line number in the file
	ID   string // the trimmed user ID; empty when Err is set
	Err  *RowError
}

// RowError says why a row was refused.
type RowError struct {
	Line   int
	Value  string // the offending value (the ID, or the whole line), shortened
	Reason string
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %s (%q)", e.Line, e.Reason, e.Value) }

// Reader reads rows of user IDs.
type Reader struct {
	src    *countingReader
	br     *bufio.Reader
	line   int
	delim  byte
	column int // index of the ID column
	width  int // columns a row must have
	header []string
	primed bool
	// pending is the first data line of a file without a header, read
	// while looking for one.
	pending *Row
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	src := &countingReader{r: r}
	return &Reader{src: src, br: bufio.NewReaderSize(src, 64<<10)}
}

// BytesRead is how many bytes of the input have been consumed so far
// (buffered bytes included), for progress reports.
func (r *Reader) BytesRead() int64 { return r.src.n }

// Next returns the next data row, skipping blank lines. It returns io.EOF
// at the end of the input, and other errors only when reading fails.
func (r *Reader) Next() (Row, error) {
	if !r.primed {
		r.primed = true
		if err := r.prime(); err != nil {
			return Row{}, err
		}
	}
	if r.pending != nil {
		row := *r.pending
		r.pending = nil
		return row, nil
	}
	for {
		line, tooLong, err := r.readLine()
		if err != nil {
			return Row{}, err
		}
		if tooLong {
			return r.bad(shorten(string(line)), fmt.Sprintf("line longer than %d bytes", MaxLineLen)), nil
		}
		if isBlank(line) {
			continue
		}
		return r.parse(line), nil
	}
}

// prime reads up to the first non-blank line, to find the separator and
// whether that line is a header.
func (r *Reader) prime() error {
	if b, err := r.br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = r.br.Discard(3)
	}
	for {
		line, tooLong, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if tooLong {
			r.delim, r.width = ',', 1
			row := r.bad(shorten(string(line)), fmt.Sprintf("line longer than %d bytes", MaxLineLen))
			r.pending = &row
			return nil
		}
		if isBlank(line) {
			continue
		}
		r.delim = detectDelimiter(line)
		fields, ok := split(line, r.delim)
		if ok {
			for _, want := range []string{"user_id", "userid", "id"} {
				for i, f := range fields {
					if strings.EqualFold(strings.TrimSpace(f), want) {
						r.header, r.column, r.width = fields, i, len(fields)
						return nil
					}
				}
			}
		}
		// No header: one ID a row.
		r.width, r.column = 1, 0
		row := r.parse(line)
		r.pending = &row
		return nil
	}
}

// parse turns a non-blank line into a row.
func (r *Reader) parse(line []byte) Row {
	fields, ok := split(line, r.delim)
	if !ok {
		return r.bad(shorten(string(line)), "unterminated quote")
	}
	if len(fields) != r.width {
		reason := fmt.Sprintf("wrong column count: %d, want %d", len(fields), r.width)
		if r.header == nil {
			reason += " (one user ID a row, or a header row with a user_id column)"
		}
		return r.bad(shorten(string(line)), reason)
	}
	id := strings.TrimSpace(fields[r.column])
	if utf8.ValidString(id) {
		id = segmentd.NormalizeID(id) // the rule of every write and lookup
	}
	switch {
	case id == "":
		return r.bad("", "empty user ID")
	case !utf8.ValidString(id):
		return r.bad(shorten(strings.ToValidUTF8(id, "\uFFFD")), "user ID is not valid UTF-8")
	case len(id) > MaxIDLen:
		return r.bad(shorten(id), fmt.Sprintf("user ID longer than %d bytes", MaxIDLen))
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return r.bad(shorten(id), "control character in user ID")
	}
	return Row{Line: r.line, ID: id}
}

func (r *Reader) bad(value, reason string) Row {
	// The value is for people to read; it must also store anywhere (no
	// invalid UTF-8, no NUL, which PostgreSQL text refuses).
	value = strings.ReplaceAll(strings.ToValidUTF8(value, "\uFFFD"), "\x00", "\uFFFD")
	if len(value) > maxValue+len("…") { // the replacements are longer than what they replace
		value = shorten(value)
	}
	return Row{Line: r.line, Err: &RowError{Line: r.line, Value: value, Reason: reason}}
}

// readLine reads the next line without its line ending. A line over
// MaxLineLen is consumed whole but returned cut, with tooLong set. At the
// end of the input it returns io.EOF.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(buf)+len(chunk) <= MaxLineLen+2 {
			buf = append(buf, chunk...)
		} else {
			tooLong = true
			if len(buf) < maxValue {
				buf = append(buf, chunk[:min(len(chunk), maxValue)]...)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return nil, false, io.EOF
			}
		default:
			return nil, false, fmt.Errorf("idcsv: read: %w", err)
		}
		r.line++
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		if len(buf) > MaxLineLen {
			tooLong = true
		}
		return buf, tooLong, nil
	}
}

// detectDelimiter picks the most frequent of comma, semicolon and tab
// outside quotes in a line; comma when there is none.
func detectDelimiter(line []byte) byte {
	counts := map[byte]int{}
	quoted := false
	for _, c := range line {
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ',' || c == ';' || c == '\t'):
			counts[c]++
		}
	}
	best := byte(',')
	for _, c := range []byte{',', ';', '\t'} {
		if counts[c] > counts[best] {
			best = c
		}
	}
	return best
}

// split splits a line into fields, unquoting quoted ones. ok is false for
// an unterminated quote.
func split(line []byte, delim byte) (fields []string, ok bool) {
	var f strings.Builder
	i := 0
	for {
		// Leading spaces before an opening quote are allowed.
		j := i
		for j < len(line) && (line[j] == ' ' || (line[j] == '\t' && delim != '\t')) {
			j++
		}
		if j < len(line) && line[j] == '"' {
			f.Reset()
			k := j + 1
			for {
				q := bytes.IndexByte(line[k:], '"')
				if q < 0 {
					return nil, false
				}
				f.Write(line[k : k+q])
				k += q + 1
				if k < len(line) && line[k] == '"' { // "" is a quote
					f.WriteByte('"')
					k++
					continue
				}
				break
			}
			// Anything between the closing quote and the delimiter is
			// kept, as spreadsheets do with `"a"b`.
			end := bytes.IndexByte(line[k:], delim)
			if end < 0 {
				f.Write(line[k:])
				return append(fields, f.String()), true
			}
			f.Write(line[k : k+end])
			fields = append(fields, f.String())
			i = k + end + 1
			continue
		}
		end := bytes.IndexByte(line[i:], delim)
		if end < 0 {
			return append(fields, string(line[i:])), true
		}
		fields = append(fields, string(line[i:i+end]))
		i += end + 1
	}
}

func isBlank(line []byte) bool { return len(bytes.TrimSpace(line)) == 0 }

func shorten(s string) string {
	if len(s) <= maxValue {
		return s
	}
	cut := maxValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

package idcsv

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

type result struct {
	ids  []string
	bads []RowError
}

func readAll(t testing.TB, in string) result {
	t.Helper()
	r := NewReader(strings.NewReader(in))
	var res result
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if row.Err != nil {
			res.bads = append(res.bads, *row.Err)
		} else {
			res.ids = append(res.ids, fmt.Sprintf("%d:%s", row.Line, row.ID))
		}
	}
}

func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		ids  string // "line:id" joined by " "
		bads string // "line:reason" joined by " | "
	}{
		{name: "one id a row", in: "alice\nbob\n", ids: "1:alice 2:bob"},
		{name: "no trailing newline, CRLF", in: "alice\r\nbob", ids: "1:alice 2:bob"},
		{name: "BOM", in: "\uFEFFalice\nbob\n", ids: "1:alice 2:bob"},
		{name: "BOM and header", in: "\uFEFFuser_id,name\nu1,Ann\n", ids: "2:u1"},
		{name: "blank lines and spaces", in: "\n  alice  \n\n\t\nbob\n", ids: "2:alice 5:bob"},
		{name: "header userId semicolon", in: "name;userId;plan\nAnn;u1;pro\nBo;u2;free\n", ids: "2:u1 3:u2"},
		{name: "header id tab", in: "email\tid\na@x\t7\n", ids: "2:7"},
		{name: "header case-insensitive, user_id preferred", in: "ID,User_ID\n1,u1\n", ids: "2:u1"},
		{name: "quoted fields", in: "user_id,name\n\"u,1\",\"Ann \"\"A\"\"\"\n  \"u2\" ,x\n", ids: "2:u,1 3:u2"},
		{name: "quoted id alone", in: "\"a;b\"\n", ids: "1:a;b"},
		{name: "duplicates are rows", in: "a\na\n", ids: "1:a 2:a"},
		// Issue 13: IDs follow segmentd's one rule (trim, NFC), as on every other path.
		{name: "NFD ids come out NFC", in: "user_id\n  Zoe\u0308 \n\"e\u0301\"\n", ids: "2:Zo\u00eb 3:\u00e9"},
		{
			name: "bad rows reported, good rows kept",
			in:   "user_id,plan\nu1,pro\n,free\nu3\nu4,pro,x\n\"u5,pro\nu\x01x,pro\nu7,pro\n",
			ids:  "2:u1 8:u7",
			bads: "3:empty user ID | 4:wrong column count: 1, want 2 | 5:wrong column count: 3, want 2 | 6:unterminated quote | 7:control character in user ID",
		},
		{
			name: "no header, two columns",
			in:   "alice,1\nbob\n",
			ids:  "2:bob",
			bads: "1:wrong column count: 2, want 1 (one user ID a row, or a header row with a user_id column)",
		},
		{name: "too long id", in: "a\n" + strings.Repeat("x", 257) + "\n", ids: "1:a", bads: "2:user ID longer than 256 bytes"},
		{name: "longest id", in: strings.Repeat("x", 256) + "\n", ids: "1:" + strings.Repeat("x", 256)},
		{name: "too long line", in: "a\n" + strings.Repeat("y", MaxLineLen+10) + "\nb\n", ids: "1:a 3:b", bads: fmt.Sprintf("2:line longer than %d bytes", MaxLineLen)},
		{name: "invalid utf8", in: "ok\n\xff\xfe\n", ids: "1:ok", bads: "2:user ID is not valid UTF-8"},
		{name: "empty file", in: ""},
		{name: "header only", in: "user_id\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := readAll(t, tc.in)
			if got := strings.Join(res.ids, " "); got != tc.ids {
				t.Errorf("ids = %q, want %q", got, tc.ids)
			}
			var bads []string
			for _, b := range res.bads {
				bads = append(bads, fmt.Sprintf("%d:%s", b.Line, b.Reason))
			}
			if got := strings.Join(bads, " | "); got != tc.bads {
				t.Errorf("bad rows = %q, want %q", got, tc.bads)
			}
		})
	}
}

func TestBadRowValue(t *testing.T) {
	res := readAll(t, "user_id,plan\nu\x01x,pro\nu2,a,b\n")
	if len(res.bads) != 2 {
		t.Fatalf("bad rows = %v", res.bads)
	}
	if res.bads[0].Value != "u\x01x" {
		t.Errorf("value of a control-character row = %q, want the ID", res.bads[0].Value)
	}
	if res.bads[1].Value != "u2,a,b" {
		t.Errorf("value of a wrong-width row = %q, want the line", res.bads[1].Value)
	}
}

func TestBytesRead(t *testing.T) {
	in := strings.Repeat("user-0123456789\n", 100_000)
	r := NewReader(strings.NewReader(in))
	n := 0
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 100_000 || r.BytesRead() != int64(len(in)) {
		t.Fatalf("rows %d, bytes read %d; want 100000, %d", n, r.BytesRead(), len(in))
	}
}

// FuzzReader checks that any input is read to the end without error or
// panic, every row is either a valid ID or a bad row with a reason, IDs obey
// the rules, and line numbers only grow.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"alice\nbob\n", "\uFEFFuser_id;name\nu1;A\n", "id\t x\n\"a\"\"b\"\tq\n",
		"user_id,plan\n,\n\"u\n", "a\r\n\r\n b \n", "\"", "userId\n" + strings.Repeat("z", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := NewReader(strings.NewReader(in))
		last := 0
		for {
			row, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if row.Line <= last {
				t.Fatalf("line %d after line %d", row.Line, last)
			}
			last = row.Line
			if row.Err != nil {
				if row.Err.Reason == "" || row.ID != "" || len(row.Err.Value) > maxValue+len("…") {
					t.Fatalf("bad row %+v", row)
				}
				continue
			}
			if row.ID == "" || len(row.ID) > MaxIDLen || !utf8.ValidString(row.ID) || strings.TrimSpace(row.ID) != row.ID {
				t.Fatalf("invalid ID accepted: %q", row.ID)
			}
		}
		if r.BytesRead() > int64(len(in)) {
			t.Fatalf("read %d bytes of %d", r.BytesRead(), len(in))
		}
	})
}

// Package jsonmap is the Go type of the JSON object columns (user traits,
// event properties, traits and context): a map[string]any that reads back
// whatever the database holds. encoding/json fails a whole row on one
// number outside float64 (a 1e400 written by an older version or by hand),
// which made the user, their events and every stream that reads them
// unreadable; Map keeps such a number as its text instead.
package jsonmap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
)

// Map is a JSON object. It is a map[string]any in every other respect:
// values of either type assign to the other.
type Map map[string]any

// UnmarshalJSON decodes an object as encoding/json does (numbers as
// float64), except that a number outside float64 becomes a string holding
// its text rather than failing the whole value.
func (m *Map) UnmarshalJSON(b []byte) error {
	var plain map[string]any
	if err := json.Unmarshal(b, &plain); err == nil {
		*m = plain // the common case, at encoding/json's speed
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("jsonmap: %w", err)
	}
	if raw == nil {
		*m = nil
		return nil
	}
	for k, v := range raw {
		raw[k] = numbers(v)
	}
	*m = raw
	return nil
}

// numbers replaces each json.Number in v by its float64, or by its text
// when it has none.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return string(x)
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// MarshalGQL writes the map as the GraphQL Map scalar, as graphql.Map does.
func (m Map) MarshalGQL(w io.Writer) { graphql.MarshalMap(map[string]any(m)).MarshalGQL(w) }

// UnmarshalGQL reads the GraphQL Map scalar, as graphql.Map does.
func (m *Map) UnmarshalGQL(v any) error {
	x, err := graphql.UnmarshalMap(v)
	if err != nil {
		return err
	}
	*m = x
	return nil
}

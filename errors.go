package segmentd

import (
	"errors"
	"fmt"
)

// Code classifies an error for the edges: the GraphQL error presenter turns it
// into extensions.code, the HTTP handlers into a status.
type Code string

// The error codes of the public API.
const (
	CodeInvalid         Code = "BAD_USER_INPUT"
	CodeUnauthenticated Code = "UNAUTHENTICATED"
	CodeForbidden       Code = "FORBIDDEN"
	CodeNotFound        Code = "NOT_FOUND"
	CodeConflict        Code = "CONFLICT"
	CodeRateLimited     Code = "RATE_LIMITED"
	CodeCostLimit       Code = "COST_LIMIT" // a query's estimated cost is over the limit
	CodeTimeout         Code = "TIMEOUT"
	CodeInternal        Code = "INTERNAL"
)

// CodeBadRequest is a request that is not a GraphQL request the server
// takes: malformed JSON, a batch, a wrong content type or method, a
// subscription over plain HTTP.
const CodeBadRequest Code = "BAD_REQUEST"

// Error is an error a client can act on: it has a code, a message meant for
// people, and, for bad input, the path of the field at fault.
type Error struct {
	Code    Code
	Field   string // path of the bad field, such as "input.condition.or[1].value"; empty if none
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a BAD_USER_INPUT error for the field at path.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal if there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

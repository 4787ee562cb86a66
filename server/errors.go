package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
)

// presentError maps every error to the API's vocabulary: a *segmentd.Error
// keeps its code, message and field; ent's not-found, validation and
// constraint errors become NOT_FOUND, BAD_USER_INPUT and CONFLICT; anything
// else is logged in full and shown as "internal error" with code INTERNAL,
// so that no internal detail reaches a client.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		if strings.HasPrefix(gqlErr.Message, undecodableBody) {
			// gqlgen's message quotes the whole body, which may hold keys
			// and traits: neither the log nor the answer repeats it.
			gqlErr.Message = "the request body is not a GraphQL request in JSON"
			setCode(gqlErr, segmentd.CodeInvalid)
			return gqlErr
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
			// Whatever failed once the deadline passed failed because of it
			// (a cancelled statement reports its driver's own error).
			gqlErr.Message = "the request ran past its deadline (SEGMENTD_REQUEST_TIMEOUT) and was cancelled"
			setCode(gqlErr, segmentd.CodeTimeout)
			return gqlErr
		}
		if gqlErr.Extensions != nil && gqlErr.Extensions["code"] != nil && !hasDomainError(err) {
			// gqlgen's own parse and validation errors already carry a code.
			return gqlErr
		}
		var (
			derr *segmentd.Error
			verr *ent.ValidationError
		)
		switch {
		case errors.As(err, &derr):
			gqlErr.Message = derr.Message
			if derr.Field != "" {
				gqlErr.Message = derr.Field + ": " + derr.Message
			}
			setCode(gqlErr, derr.Code)
			if derr.Field != "" {
				gqlErr.Extensions["field"] = derr.Field
			}
		case ent.IsNotFound(err):
			gqlErr.Message = "not found"
			setCode(gqlErr, segmentd.CodeNotFound)
		case errors.As(err, &verr):
			gqlErr.Message = verr.Name + ": " + errors.Unwrap(verr).Error()
			setCode(gqlErr, segmentd.CodeInvalid)
			gqlErr.Extensions["field"] = verr.Name
		case ent.IsConstraintError(err):
			gqlErr.Message = "conflicts with existing data"
			setCode(gqlErr, segmentd.CodeConflict)
		case errors.As(err, new(*http.MaxBytesError)):
			gqlErr.Message = "the request body is too large"
			setCode(gqlErr, segmentd.CodeInvalid)
		case errors.Is(err, context.Canceled):
			gqlErr.Message = "request cancelled"
			setCode(gqlErr, segmentd.CodeInternal)
		case !errors.Is(err, errPanic) && argumentsUndecoded(ctx):
			// A value that passed GraphQL validation but not its type's
			// decoder: an enum value in a variable in the wrong case, a
			// malformed Time, Cursor or ID. The client's mistake, not ours.
			setCode(gqlErr, segmentd.CodeInvalid)
			if field := argumentPath(ctx, gqlErr.Path); field != "" {
				gqlErr.Message = field + ": " + gqlErr.Message
				gqlErr.Extensions["field"] = field
			}
		default:
			var ge *gqlerror.Error
			if errors.As(err, &ge) && ge.Extensions["code"] != nil {
				return gqlErr
			}
			log.ErrorContext(ctx, "internal error", "err", err, "path", gqlErr.Path.String())
			gqlErr.Message = "internal error"
			setCode(gqlErr, segmentd.CodeInternal)
		}
		return gqlErr
	}
}

// undecodableBody starts gqlgen's error for a POST body that is not JSON.
const undecodableBody = "json request body could not be decoded"

func hasDomainError(err error) bool {
	var derr *segmentd.Error
	return errors.As(err, &derr)
}

func setCode(e *gqlerror.Error, code segmentd.Code) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions["code"] = string(code)
}

// argumentsUndecoded reports whether the error being presented arose while
// gqlgen decoded the arguments of the field in ctx: it sets a field's
// arguments (a non-nil map, for a field that has any) only once they all
// decoded, before the resolver runs.
func argumentsUndecoded(ctx context.Context) bool {
	fc := graphql.GetFieldContext(ctx)
	return fc != nil && fc.Args == nil && fc.Field.Field != nil && fc.Field.Definition != nil && len(fc.Field.Definition.Arguments) > 0
}

// argumentPath is the error's path below the field in ctx, the bad
// argument, as "input.condition.operator" or "userIds[1]".
func argumentPath(ctx context.Context, path ast.Path) string {
	prefix := graphql.GetFieldContext(ctx).Path()
	if len(path) <= len(prefix) || path[:len(prefix)].String() != prefix.String() {
		return ""
	}
	return fieldPath(path[len(prefix):])
}

// errPanic is what a recovered panic becomes.
var errPanic = errors.New("internal error: panic")

// recoverPanic turns a panic in a resolver into an INTERNAL error, logged
// with its value, instead of a crashed server.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, v any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", v)
		return errPanic
	}
}

package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
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
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			gqlErr.Message = "request cancelled or timed out"
			setCode(gqlErr, segmentd.CodeInternal)
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

// recoverPanic turns a panic in a resolver into an INTERNAL error, logged
// with its value, instead of a crashed server.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, v any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", v)
		return errors.New("internal error: panic")
	}
}

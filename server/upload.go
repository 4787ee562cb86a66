package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent/importjob"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// precheckUpload reads the operations part of a GraphQL multipart request,
// which the spec puts before the files, and refuses the request there, before
// one byte of a file is read (and spooled to disk), when the caller's role
// does not allow the operation or an importSegmentUsers in it names a
// segment that does not exist or a mode that is not one. It answers the
// refusal itself and returns false; otherwise it gives r a body that
// replays what it read, for gqlgen.
func (s *Server) precheckUpload(w http.ResponseWriter, r *http.Request) bool {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		writeGraphQLError(w, http.StatusUnprocessableEntity, segmentd.CodeBadRequest, "a multipart request needs a boundary in its Content-Type")
		return false
	}
	var read bytes.Buffer
	original := r.Body
	mr := multipart.NewReader(io.TeeReader(original, &read), params["boundary"])
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "operations" {
		writeGraphQLError(w, http.StatusUnprocessableEntity, segmentd.CodeBadRequest, "the first part of a multipart request must be operations")
		return false
	}
	ops, err := io.ReadAll(io.LimitReader(part, s.cfg.MaxBodyBytes+1))
	if err != nil {
		writeGraphQLError(w, http.StatusUnprocessableEntity, segmentd.CodeBadRequest, "could not read the operations part")
		return false
	}
	if int64(len(ops)) > s.cfg.MaxBodyBytes {
		writeGraphQLError(w, http.StatusRequestEntityTooLarge, segmentd.CodeInvalid,
			fmt.Sprintf("the operations part is over %d bytes, the most allowed", s.cfg.MaxBodyBytes))
		return false
	}
	if status, derr := s.checkUploadOperation(r, ops); derr != nil {
		ext := map[string]any{"code": string(derr.Code)}
		if derr.Field != "" {
			ext["field"] = derr.Field
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{"message": derr.Error(), "extensions": ext}}})
		return false
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(read.Bytes()), original), original}
	return true
}

// checkUploadOperation checks the operation of a multipart request as
// authorize and importSegmentUsers would, before its files are read.
// Operations it cannot parse are left to gqlgen, which reports them.
func (s *Server) checkUploadOperation(r *http.Request, ops []byte) (int, *segmentd.Error) {
	var params struct {
		Query         string         `json:"query"`
		OperationName string         `json:"operationName"`
		Variables     map[string]any `json:"variables"`
	}
	if err := json.Unmarshal(ops, &params); err != nil {
		return http.StatusUnprocessableEntity, &segmentd.Error{Code: segmentd.CodeBadRequest, Field: "operations", Message: "not a GraphQL request in JSON"}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, s.cfg.MaxTokens)
	if err != nil {
		return 0, nil
	}
	var op *ast.OperationDefinition
	for _, o := range doc.Operations {
		if params.OperationName == "" || o.Name == params.OperationName {
			op = o
			break
		}
	}
	if op == nil {
		return 0, nil
	}
	p := auth.FromContext(r.Context())
	for _, f := range uploadRootFields(op.SelectionSet, doc, map[string]bool{}) {
		if !allowedRoot(p, op.Operation, f.Name) {
			return http.StatusForbidden, segmentd.Errorf(segmentd.CodeForbidden, "a %s key may not use %s %s", p.Role, op.Operation, f.Name)
		}
		if op.Operation != ast.Mutation || f.Name != "importSegmentUsers" {
			continue
		}
		if mode, ok := argumentValue(f, "mode", params.Variables); ok && mode != nil {
			m, _ := mode.(string)
			if importjob.ModeValidator(importjob.Mode(m)) != nil {
				return http.StatusBadRequest, segmentd.Invalid("mode", "%q is not ADD, REMOVE or REPLACE", fmt.Sprint(mode))
			}
		}
		if id, ok := argumentValue(f, "segmentId", params.Variables); ok {
			sid, _ := id.(string)
			if err := s.svc.SegmentExists(r.Context(), "segmentId", pulid.ID(sid)); err != nil {
				var derr *segmentd.Error
				if errors.As(err, &derr) {
					return http.StatusNotFound, derr
				}
				s.log.ErrorContext(r.Context(), "upload precheck", "err", err)
				return http.StatusInternalServerError, segmentd.Errorf(segmentd.CodeInternal, "internal error")
			}
		}
	}
	return 0, nil
}

// allowedRoot is the rule for one root field, of authorize and of uploads
// (checked before their file is read): queries and subscriptions need READ
// or ADMIN, ingestion mutations (writeRules) WRITE or ADMIN, other
// mutations ADMIN.
func allowedRoot(p *auth.Principal, op ast.Operation, field string) bool {
	switch op {
	case ast.Query, ast.Subscription:
		return p.CanRead()
	case ast.Mutation:
		if writeRules["Mutation."+field] {
			return p.CanIngest()
		}
		return p.CanAdmin()
	}
	return false
}

// uploadRootFields are the root fields of an operation, through fragments.
func uploadRootFields(set ast.SelectionSet, doc *ast.QueryDocument, seen map[string]bool) []*ast.Field {
	var out []*ast.Field
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			out = append(out, sel)
		case *ast.InlineFragment:
			out = append(out, uploadRootFields(sel.SelectionSet, doc, seen)...)
		case *ast.FragmentSpread:
			if f := doc.Fragments.ForName(sel.Name); f != nil && !seen[sel.Name] {
				seen[sel.Name] = true
				out = append(out, uploadRootFields(f.SelectionSet, doc, seen)...)
			}
		}
	}
	return out
}

// argumentValue is the value of a field's argument, a literal or a
// variable; ok is false when the argument is not given.
func argumentValue(f *ast.Field, name string, vars map[string]any) (any, bool) {
	arg := f.Arguments.ForName(name)
	if arg == nil || arg.Value == nil {
		return nil, false
	}
	if arg.Value.Kind == ast.Variable {
		v, ok := vars[arg.Value.Raw]
		return v, ok
	}
	v, err := arg.Value.Value(nil)
	if err != nil {
		return nil, false
	}
	return v, true
}

package server

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/segmentapi"
	"github.com/segmentd/segmentd/service"
)

// v1 serves Segment's HTTP Tracking API: POST /v1/{track,identify,page,
// screen,group,alias,batch}. The write key is the Basic-auth user name (or
// a Bearer token); bodies may be gzip-compressed; the answer is
// {"success": true}, or a 4xx with {"success": false, "error": {...}} and
// nothing stored.
func (s *Server) v1(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if !p.CanIngest() {
		writeV1Error(w, http.StatusForbidden, segmentd.CodeForbidden, "", "a "+string(p.Role)+" key may not send events; use a WRITE or ADMIN key")
		return
	}
	if !s.allow(w, p, false) {
		return
	}
	body, err := readBody(r, segmentapi.MaxBatchBytes)
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, segmentd.CodeInvalid, "", err.Error())
		return
	}
	msgs, err := segmentapi.Decode(typ, body, s.cfg.Now().UTC())
	var derr *segmentapi.Error
	if errors.As(err, &derr) {
		status := http.StatusBadRequest
		writeV1Error(w, status, segmentd.CodeInvalid, derr.Field, derr.Message)
		return
	}
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, segmentd.CodeInvalid, "", err.Error())
		return
	}
	inputs := make([]service.TrackInput, len(msgs))
	for i, m := range msgs {
		in := service.TrackInput{
			Type:       event.Type(strings.ToUpper(m.Type)),
			Event:      m.Event,
			Properties: m.Properties,
			Traits:     m.Traits,
			Context:    m.Context,
			GroupID:    m.GroupID,
		}
		if m.UserID != "" {
			in.UserID = &m.UserID
		}
		if m.AnonymousID != "" {
			in.AnonymousID = &m.AnonymousID
		}
		if m.MessageID != "" {
			in.MessageID = &m.MessageID
		}
		if !m.Timestamp.IsZero() {
			in.Timestamp = &m.Timestamp
		}
		inputs[i] = in
	}
	field := ""
	if typ == "batch" {
		field = "batch"
	}
	if _, err := s.svc.Ingest(r.Context(), inputs, field); err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"success":true}`))
}

// readBody reads a request body of at most limit bytes, gunzipping it when
// Content-Encoding says gzip (the limit applies to the decompressed body, so
// that a small bomb cannot expand without bound).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	var src io.Reader = r.Body
	switch strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, errors.New("the body says Content-Encoding: gzip but is not gzip")
		}
		defer zr.Close()
		src = zr
	default:
		return nil, errors.New("unsupported Content-Encoding: use gzip or none")
	}
	body, err := io.ReadAll(io.LimitReader(src, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errors.New("the request body is too large")
		}
		return nil, errors.New("could not read the body: " + err.Error())
	}
	if int64(len(body)) > limit {
		return nil, errors.New("the request body is too large: at most 500 KB for a batch, 32 KB for a message")
	}
	return body, nil
}

// authenticate checks the request's key; on failure it answers 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*auth.Principal, bool) {
	p, err := s.keys.Authenticate(r.Context(), auth.BearerToken(r.Header.Get("Authorization")))
	if err != nil {
		s.writeServiceError(w, r, err)
		return nil, false
	}
	noteKey(r.Context(), p)
	return p, true
}

func (s *Server) writeServiceError(w http.ResponseWriter, r *http.Request, err error) {
	var derr *segmentd.Error
	if !errors.As(err, &derr) {
		s.log.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "err", err)
		writeV1Error(w, http.StatusInternalServerError, segmentd.CodeInternal, "", "internal error")
		return
	}
	status := map[segmentd.Code]int{
		segmentd.CodeInvalid:         http.StatusBadRequest,
		segmentd.CodeUnauthenticated: http.StatusUnauthorized,
		segmentd.CodeForbidden:       http.StatusForbidden,
		segmentd.CodeNotFound:        http.StatusNotFound,
		segmentd.CodeConflict:        http.StatusConflict,
		segmentd.CodeRateLimited:     http.StatusTooManyRequests,
	}[derr.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeV1Error(w, status, derr.Code, derr.Field, derr.Message)
}

func writeV1Error(w http.ResponseWriter, status int, code segmentd.Code, field, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"code": string(code), "message": msg}
	if field != "" {
		e["field"] = field
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "error": e})
}

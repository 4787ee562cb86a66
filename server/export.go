package server

import (
	"encoding/csv"
	"net/http"
	"strings"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// exportPage is how many members the CSV export reads at a time.
const exportPage = 5000

// membersCSV streams a segment's members as CSV (user_id, entered_at,
// source), page by page, so that memory does not grow with the segment.
func (s *Server) membersCSV(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if !p.CanRead() {
		writeV1Error(w, http.StatusForbidden, segmentd.CodeForbidden, "", "exports need a READ or ADMIN key")
		return
	}
	if !s.allow(w, p, false) {
		return
	}
	ctx := r.Context()
	id := pulid.ID(r.PathValue("id"))
	seg, err := s.store.Client.Segment.Get(ctx, id)
	if ent.IsNotFound(err) {
		writeV1Error(w, http.StatusNotFound, segmentd.CodeNotFound, "id", "no segment with id "+string(id))
		return
	}
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+string(seg.ID)+`-members.csv"`)
	// Streaming a large segment takes longer than the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"user_id", "entered_at", "source"})
	var after pulid.ID
	for {
		q := s.store.Client.Membership.Query().
			Where(membership.SegmentRef(id)).
			Order(ent.Asc(membership.FieldID)).
			WithUser().
			Limit(exportPage)
		if after != "" {
			q = q.Where(membership.IDGT(after))
		}
		page, err := q.All(ctx)
		if err != nil {
			// Headers are sent: all we can do is stop and log.
			s.log.ErrorContext(ctx, "export members", "segment", id, "err", err)
			return
		}
		for _, m := range page {
			_ = cw.Write([]string{safeCell(m.Edges.User.UserID), m.EnteredAt.UTC().Format(time.RFC3339Nano), string(m.Source)})
		}
		cw.Flush()
		if cw.Error() != nil || len(page) < exportPage {
			return
		}
		after = page[len(page)-1].ID
	}
}

// safeCell defuses spreadsheet formula injection: a cell that starts with
// =, +, -, @, tab or carriage return is prefixed with a quote, as OWASP
// advises, so that spreadsheets show it as text instead of running it.
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

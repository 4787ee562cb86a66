package store

import (
	"slices"
	"testing"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membershipchange"
)

// The log definitions name what ent generates: a table or key column
// renamed in ent/schema without changelog would leave the tailers reading a
// column that is gone.
func TestLogsNameEntTables(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		log        changelog.Log
		table, key string
	}{
		{changelog.MembershipChanges, membershipchange.Table, membershipchange.FieldSegmentRef},
		{changelog.Events, event.Table, event.FieldName},
		{changelog.CampaignActivations, campaignactivation.Table, campaignactivation.FieldCampaignRef},
	} {
		if c.log.Table != c.table || c.log.Key != c.key {
			t.Errorf("changelog names %s.%s, ent has %s.%s", c.log.Table, c.log.Key, c.table, c.key)
		}
	}
	if changelog.MembershipChanges.Seq != membershipchange.FieldID {
		t.Errorf("membership_changes is read by %q, ent's id is %q", changelog.MembershipChanges.Seq, membershipchange.FieldID)
	}
}

// The migration built from the log definitions is, statement for
// statement, the one databases already ran: an index renamed here would be
// created a second time beside the old one.
func TestPostgresLogColumnsUnchanged(t *testing.T) {
	t.Parallel()
	want := []string{
		`ALTER TABLE membership_changes ADD COLUMN IF NOT EXISTS log_txid xid8 NOT NULL DEFAULT pg_current_xact_id()`,
		`CREATE INDEX IF NOT EXISTS membership_changes_log ON membership_changes (log_txid, id)`,
		`CREATE INDEX IF NOT EXISTS membership_changes_segment_log ON membership_changes (segment_ref, log_txid, id)`,
		`ALTER TABLE events ADD COLUMN IF NOT EXISTS log_txid xid8 NOT NULL DEFAULT pg_current_xact_id()`,
		`ALTER TABLE events ADD COLUMN IF NOT EXISTS log_seq bigserial`,
		`CREATE INDEX IF NOT EXISTS events_log ON events (log_txid, log_seq)`,
		`ALTER TABLE campaign_activations ADD COLUMN IF NOT EXISTS log_txid xid8 NOT NULL DEFAULT pg_current_xact_id()`,
		`ALTER TABLE campaign_activations ADD COLUMN IF NOT EXISTS log_seq bigserial`,
		`CREATE INDEX IF NOT EXISTS campaign_activations_log ON campaign_activations (log_txid, log_seq)`,
		`CREATE INDEX IF NOT EXISTS campaign_activations_campaign_log ON campaign_activations (campaign_ref, log_txid, log_seq)`,
	}
	if got := postgresLogColumns(); !slices.Equal(got, want) {
		t.Errorf("postgresLogColumns() =\n%q\nwant\n%q", got, want)
	}
	if got := SQLiteLogTables; !slices.Equal(got, []string{"events", "campaign_activations"}) {
		t.Errorf("SQLiteLogTables = %q", got)
	}
}

package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
)

// Staged sets: an import stages a file's distinct user IDs in import_ids
// (job_ref, user_id, k), creates their users, and then applies the set to
// a segment with a fixed number of set-based statements, whatever the
// file's size.
//
// The statements that apply staged IDs to a segment. $1 is the job, $2 the
// segment; the rest are named in each. Existing rows are skipped by ON
// CONFLICT alone, not by a NOT EXISTS on the table being written: the plan
// of such a NOT EXISTS is made while the table is small (an empty segment),
// and a scan that is cheap then is quadratic once the statement has added
// a million rows. They are plain SQL that SQLite and PostgreSQL both run,
// except the removal (exitStaged), which PostgreSQL does in one statement.
const (
	// $3 the time, $4 the reason.
	stagedAddMembers = `INSERT INTO memberships (id, segment_ref, user_ref, entered_at, source, reason)
SELECT 'mem_' || i.k, CAST($2 AS TEXT), u.id, $3, 'IMPORT', CAST($4 AS TEXT) FROM import_ids i JOIN users u ON u.user_id = i.user_id
WHERE i.job_ref = CAST($1 AS TEXT)
ON CONFLICT (segment_ref, user_ref) DO NOTHING`
	// The memberships this job created are those named 'mem_' || k.
	stagedLogEntries = `INSERT INTO membership_changes (segment_ref, user_ref, kind, source, at, reason)
SELECT m.segment_ref, m.user_ref, 'ENTERED', 'IMPORT', m.entered_at, m.reason
FROM import_ids i JOIN memberships m ON m.id = 'mem_' || i.k
WHERE i.job_ref = CAST($1 AS TEXT) AND m.segment_ref = CAST($2 AS TEXT)`
	// The expiry deadlines of the memberships this job created: $3 the
	// instant they expire.
	stagedWriteExpiries = `INSERT INTO membership_deadlines (segment_ref, user_ref, due_at, why)
SELECT m.segment_ref, m.user_ref, $3, 'EXPIRE'
FROM import_ids i JOIN memberships m ON m.id = 'mem_' || i.k
WHERE i.job_ref = CAST($1 AS TEXT) AND m.segment_ref = CAST($2 AS TEXT)
ON CONFLICT (segment_ref, user_ref, why) DO UPDATE SET due_at = excluded.due_at`
	// $3 the campaign, $4 the time, $5 the ID suffix that keeps the
	// activation IDs of several campaigns apart.
	// This is the ONCE policy: entry 1, which a user who activated the
	// campaign before already has (a conflict on (campaign, user, entry),
	// the only unique index checked before each row is written: the id
	// and the membership are new).
	stagedActivate = `INSERT INTO campaign_activations (id, campaign_ref, user_ref, segment_ref, activated_at, entry, membership_ref)
SELECT 'act_' || i.k || CAST($5 AS TEXT), CAST($3 AS TEXT), m.user_ref, m.segment_ref, $4, 1, m.id
FROM import_ids i JOIN memberships m ON m.id = 'mem_' || i.k
WHERE i.job_ref = CAST($1 AS TEXT) AND m.segment_ref = CAST($2 AS TEXT)
ON CONFLICT (campaign_ref, user_ref, entry) DO NOTHING`
	// The memberships this job created, a page at a time after key $3:
	// for the EVERY_ENTRY campaigns, whose cooldown and numbering depend
	// on each user's earlier activations.
	stagedEntered = `SELECT i.k, m.id, m.user_ref FROM import_ids i JOIN memberships m ON m.id = 'mem_' || i.k
WHERE i.job_ref = CAST($1 AS TEXT) AND m.segment_ref = CAST($2 AS TEXT) AND i.k > CAST($3 AS TEXT)
ORDER BY i.k LIMIT 1000`
	// Members of the segment who are in the file / not in the file.
	stagedInFile    = `EXISTS (SELECT 1 FROM import_ids i JOIN users u ON u.user_id = i.user_id WHERE i.job_ref = CAST($1 AS TEXT) AND u.id = m.user_ref) AND m.segment_ref = CAST($2 AS TEXT)`
	stagedNotInFile = `NOT EXISTS (SELECT 1 FROM users u JOIN import_ids i ON i.job_ref = CAST($1 AS TEXT) AND i.user_id = u.user_id WHERE u.id = m.user_ref) AND m.segment_ref = CAST($2 AS TEXT)`
)

// StagedSet is a set of user IDs staged in import_ids under Job, applied
// to Segment at At. Its users exist (the import created them).
type StagedSet struct {
	Job     pulid.ID
	Segment pulid.ID
	At      time.Time
	// Reason is the reason logged with each change.
	Reason string
	// ExpiresAt, if set, is when the memberships that the set creates
	// expire (the segment's exit rule after, counted from At).
	ExpiresAt *time.Time
}

// Members selects members of a staged set's segment.
type Members int

const (
	// Staged are the segment's members whose user is in the set.
	Staged Members = iota
	// Unstaged are the segment's members whose user is not in the set.
	Unstaged
)

func (m Members) where() string {
	if m == Unstaged {
		return stagedNotInFile
	}
	return stagedInFile
}

// StagedResult says what a staged call wrote.
type StagedResult struct {
	Entered, Exited int
	// Campaigns are the ACTIVE campaigns that activated for some of the
	// users who entered.
	Campaigns []pulid.ID
	Topics    Topics
}

// CountStaged counts the members of set's segment that sel selects,
// writing nothing (an import's dry run).
func (l *Ledger) CountStaged(ctx context.Context, tx *ent.Tx, set StagedSet, sel Members) (int, error) {
	n, err := countRows(ctx, tx, "SELECT count(*) FROM memberships m WHERE "+sel.where(), string(set.Job), string(set.Segment))
	if err != nil {
		return 0, fmt.Errorf("ledger.CountStaged: %w", err)
	}
	return n, nil
}

// EnterStaged makes every user of set who is not a member of its segment a
// member (source IMPORT), logs the entries, counts them and activates the
// segment's ACTIVE campaigns for them as their re-entry policy allows
// (ONCE campaigns in a fixed number of INSERT ... SELECT statements,
// EVERY_ENTRY campaigns a page of entries at a time), and writes their
// expiry deadlines if set.ExpiresAt is set.
//
// The inserts run without per-row foreign key checks where the store can
// turn them off (see withoutForeignKeyChecks): the segment's row is locked
// FOR KEY SHARE first, as the checks would lock it (which LockAudience
// relies on), and the campaigns' rows as they are read; the users exist
// (the import created them, or found them) and are never deleted.
func (w *Writer) EnterStaged(ctx context.Context, set StagedSet) (*StagedResult, error) {
	var res *StagedResult
	err := w.l.st.withoutForeignKeyChecks(ctx, w.tx, func() (err error) {
		res, err = w.enterStaged(ctx, set)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (w *Writer) enterStaged(ctx context.Context, set StagedSet) (*StagedResult, error) {
	tx := w.tx
	res := &StagedResult{}
	locked, err := tx.Segment.Query().Where(segment.ID(set.Segment), w.l.st.lockKeys).IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger.EnterStaged: lock the segment: %w", err)
	}
	if len(locked) == 0 {
		return nil, &segmentd.Error{Code: segmentd.CodeNotFound, Field: "segmentId", Message: fmt.Sprintf("no segment with id %q", set.Segment)}
	}
	// The campaigns are read under the segment's lock, which a campaign
	// that starts on it waits for (see LockAudience), so they are read
	// before the inserts.
	all, err := tx.Campaign.Query().
		Where(campaign.SegmentRef(set.Segment), campaign.StatusEQ(campaign.StatusACTIVE), w.l.st.lockKeys).
		Order(ent.Asc(campaign.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger.EnterStaged: find campaigns: %w", err)
	}
	var camps []pulid.ID
	var everyEntry []*ent.Campaign
	for _, c := range all {
		if c.Reentry == campaign.ReentryEVERY_ENTRY {
			everyEntry = append(everyEntry, c)
		} else {
			camps = append(camps, c.ID)
		}
	}
	added, activated, ok, err := w.l.st.enterStaged(ctx, tx, set, camps)
	if err != nil {
		return nil, fmt.Errorf("ledger.EnterStaged: %w", err)
	}
	if !ok {
		if added, activated, err = w.enterStagedEach(ctx, set, camps); err != nil {
			return nil, fmt.Errorf("ledger.EnterStaged: %w", err)
		}
	}
	res.Entered = added
	if added == 0 {
		return res, nil
	}
	if set.ExpiresAt != nil {
		res.Topics.deadline(*set.ExpiresAt)
	}
	w.counts.entered(set.Segment, set.At, int64(added))
	res.Topics.segment(set.Segment)
	w.changed(changelog.KindEntered, changelog.SourceImport, added)
	if len(everyEntry) > 0 {
		activated, err := w.activateStaged(ctx, set, everyEntry)
		if err != nil {
			return nil, fmt.Errorf("ledger.EnterStaged: %w", err)
		}
		for _, c := range everyEntry {
			if activated[c.ID] {
				res.Campaigns = append(res.Campaigns, c.ID)
				res.Topics.campaign(c.ID)
			}
		}
	}
	for n, c := range camps {
		w.activated(activated[n])
		if activated[n] > 0 {
			res.Campaigns = append(res.Campaigns, c)
			res.Topics.campaign(c)
		}
	}
	w.topics.Merge(res.Topics)
	return res, nil
}

// enterStagedEach is enterStaged's inserts in the plain SQL both stores
// run: the memberships, then, joining them again, their log rows,
// deadlines and each ONCE campaign's activations. It returns how many
// entered, and how many activations each campaign of camps got.
func (w *Writer) enterStagedEach(ctx context.Context, set StagedSet, camps []pulid.ID) (int, []int, error) {
	tx := w.tx
	job, seg := string(set.Job), string(set.Segment)
	activated := make([]int, len(camps))
	added, err := execCount(ctx, tx, stagedAddMembers, job, seg, set.At, set.Reason)
	if err != nil {
		return 0, nil, fmt.Errorf("add members: %w", err)
	}
	if added == 0 {
		return 0, activated, nil
	}
	if _, err := execCount(ctx, tx, stagedLogEntries, job, seg); err != nil {
		return 0, nil, fmt.Errorf("log entries: %w", err)
	}
	if set.ExpiresAt != nil {
		if _, err := execCount(ctx, tx, stagedWriteExpiries, job, seg, *set.ExpiresAt); err != nil {
			return 0, nil, fmt.Errorf("write deadlines: %w", err)
		}
	}
	for n, c := range camps {
		if activated[n], err = execCount(ctx, tx, stagedActivate, job, seg, string(c), set.At, activationSuffix(n)); err != nil {
			return 0, nil, fmt.Errorf("activate campaign %s: %w", c, err)
		}
	}
	return added, activated, nil
}

// activationSuffix keeps the activation IDs of a staged set's n-th ONCE
// campaign apart from the others' ('act_' || k || suffix).
func activationSuffix(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("_%d", n)
}

// activateStaged activates the EVERY_ENTRY campaigns camps for the
// memberships the job created, a page at a time (see activateCampaigns).
// It returns the campaigns that got activations.
func (w *Writer) activateStaged(ctx context.Context, set StagedSet, camps []*ent.Campaign) (map[pulid.ID]bool, error) {
	activated := map[pulid.ID]bool{}
	after := ""
	for {
		eps, last, err := w.stagedPage(ctx, set, after)
		if err != nil {
			return nil, err
		}
		if len(eps) == 0 {
			return activated, nil
		}
		var topics Topics
		if _, err := w.activateCampaigns(ctx, camps, eps, &topics); err != nil {
			return nil, fmt.Errorf("activate: %w", err)
		}
		for id := range topics.Campaigns {
			activated[id] = true
		}
		after = last
	}
}

func (w *Writer) stagedPage(ctx context.Context, set StagedSet, after string) ([]episode, string, error) {
	rows, err := w.tx.QueryContext(ctx, stagedEntered, string(set.Job), string(set.Segment), after)
	if err != nil {
		return nil, "", fmt.Errorf("list entries: %w", err)
	}
	defer rows.Close()
	var (
		eps  []episode
		last string
	)
	for rows.Next() {
		var m, u pulid.ID
		if err := rows.Scan(&last, &m, &u); err != nil {
			return nil, "", fmt.Errorf("list entries: %w", err)
		}
		eps = append(eps, episode{Index: len(eps), Segment: set.Segment, User: u, Membership: m, EnteredAt: set.At, At: set.At})
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list entries: %w", err)
	}
	return eps, last, nil
}

// ExitStaged removes the members of set's segment that sel selects (source
// IMPORT, reason set.Reason), logs their exits, counts them down and
// deletes their expiry deadlines.
func (w *Writer) ExitStaged(ctx context.Context, set StagedSet, sel Members) (*StagedResult, error) {
	counts, err := w.l.st.exitStaged(ctx, w.tx, sel.where(), string(set.Job), string(set.Segment), set.At, set.Reason)
	if err != nil {
		return nil, fmt.Errorf("ledger.ExitStaged: %w", err)
	}
	res := &StagedResult{}
	for _, c := range counts {
		for range c.n {
			w.counts.exited(set.Segment, c.enteredAt, set.At)
		}
		res.Exited += c.n
	}
	w.changed(changelog.KindExited, changelog.SourceImport, res.Exited)
	if res.Exited > 0 {
		res.Topics.segment(set.Segment)
	}
	w.topics.Merge(res.Topics)
	return res, nil
}

// ReplaceStaged makes set the segment's members: members not in the set
// leave (with exitReason), then users of the set who are not members
// enter, as ExitStaged and EnterStaged.
func (w *Writer) ReplaceStaged(ctx context.Context, set StagedSet, exitReason string) (*StagedResult, error) {
	out := set
	out.Reason = exitReason
	gone, err := w.ExitStaged(ctx, out, Unstaged)
	if err != nil {
		return nil, err
	}
	res, err := w.EnterStaged(ctx, set)
	if err != nil {
		return nil, err
	}
	res.Exited = gone.Exited
	res.Topics.Merge(gone.Topics)
	return res, nil
}

func scanEnteredCounts(rows *sql.Rows, err error) ([]enteredCount, error) {
	if err != nil {
		return nil, fmt.Errorf("remove members: %w", err)
	}
	defer rows.Close()
	var out []enteredCount
	for rows.Next() {
		var c enteredCount
		if err := rows.Scan(&c.enteredAt, &c.n); err != nil {
			return nil, fmt.Errorf("remove members: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("remove members: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("remove members: %w", err)
	}
	return out, nil
}

func countRows(ctx context.Context, tx *ent.Tx, query string, args ...any) (int, error) {
	defer timed(ctx, query)()
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	defer rows.Close()
	n := 0
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, fmt.Errorf("count: %w", err)
		}
	}
	return n, rows.Err()
}

func execCount(ctx context.Context, tx *ent.Tx, query string, args ...any) (int, error) {
	defer timed(ctx, query)()
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// timed logs how long a set-based statement took, at debug level.
func timed(ctx context.Context, query string) func() {
	start := time.Now()
	return func() {
		first, _, _ := strings.Cut(strings.TrimSpace(query), "\n")
		slog.DebugContext(ctx, "import statement", "took", time.Since(start).Round(time.Millisecond), "sql", first)
	}
}

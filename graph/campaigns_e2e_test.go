package graph_test

// End-to-end tests of campaigns over real HTTP, on SQLite and PostgreSQL:
// create, update, delete, list and filter, Segment.campaigns and
// Campaign.segment, and what deleting a segment does to its campaigns.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// campaignView is a Campaign as the API returns it.
type campaignView struct {
	ID              string
	Name            string
	Description     *string
	Status          string
	Segment         *struct{ ID, Name string }
	ActivationCount int
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

func (c campaignView) segmentID() string {
	if c.Segment == nil {
		return ""
	}
	return c.Segment.ID
}

const campaignFields = `id name description status segment { id name } activationCount createdAt updatedAt`

func createCampaign(t *testing.T, c *testenv.Client, in map[string]any) campaignView {
	t.Helper()
	var out struct{ CreateCampaign campaignView }
	c.MustDo(t, `mutation($in: CreateCampaignInput!) { createCampaign(input: $in) { `+campaignFields+` } }`,
		map[string]any{"in": in}, &out)
	if !strings.HasPrefix(out.CreateCampaign.ID, "cmp_") {
		t.Fatalf("createCampaign returned id %q", out.CreateCampaign.ID)
	}
	return out.CreateCampaign
}

func updateCampaign(t *testing.T, c *testenv.Client, id string, in map[string]any) campaignView {
	t.Helper()
	var out struct{ UpdateCampaign campaignView }
	c.MustDo(t, `mutation($id: ID!, $in: UpdateCampaignInput!) { updateCampaign(id: $id, input: $in) { `+campaignFields+` } }`,
		map[string]any{"id": id, "in": in}, &out)
	got := getCampaign(t, c, id)
	if got == nil || got.Status != out.UpdateCampaign.Status || got.Name != out.UpdateCampaign.Name ||
		got.segmentID() != out.UpdateCampaign.segmentID() || !got.UpdatedAt.Equal(out.UpdateCampaign.UpdatedAt) {
		t.Fatalf("updateCampaign answered %+v but node reads %+v", out.UpdateCampaign, got)
	}
	return out.UpdateCampaign
}

// getCampaign reads a campaign through node(id:); nil if there is none.
func getCampaign(t *testing.T, c *testenv.Client, id string) *campaignView {
	t.Helper()
	r := c.Do(t, `query($id: ID!) { node(id: $id) { ... on Campaign { `+campaignFields+` } } }`, map[string]any{"id": id})
	var out struct{ Node *campaignView }
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatalf("decode %s: %v (errors %+v)", r.Data, err, r.Errors)
	}
	switch {
	case len(r.Errors) == 0 && out.Node != nil:
	case len(r.Errors) == 1 && r.Errors[0].Code() == "NOT_FOUND" && out.Node == nil:
	default:
		t.Fatalf("node(id: %s): data %s, errors %+v", id, r.Data, r.Errors)
	}
	return out.Node
}

// campaignNames lists campaigns matching where, by name, and the totalCount.
func campaignNames(t *testing.T, c *testenv.Client, where map[string]any) ([]string, int) {
	t.Helper()
	var out struct {
		Campaigns struct {
			TotalCount int
			Edges      []struct{ Node campaignView }
		}
	}
	c.MustDo(t, `query($where: CampaignWhereInput) { campaigns(where: $where, orderBy: {field: NAME, direction: ASC}) {
  totalCount edges { node { `+campaignFields+` } } } }`, map[string]any{"where": where}, &out)
	names := []string{}
	for _, e := range out.Campaigns.Edges {
		names = append(names, e.Node.Name)
	}
	return names, out.Campaigns.TotalCount
}

// segmentCampaigns is Segment.campaigns as "name/STATUS" strings.
func segmentCampaigns(t *testing.T, c *testenv.Client, segID string) []string {
	t.Helper()
	s := getSegment(t, c, segID)
	if s == nil {
		t.Fatalf("segment %s is gone", segID)
	}
	out := []string{}
	for _, cmp := range s.Campaigns {
		out = append(out, cmp.Name+"/"+cmp.Status)
	}
	return out
}

// TestCampaignCRUD: campaigns are created (DRAFT by default, with or
// without a segment), listed and filtered by status and segment, updated
// (status, segment, clearSegment, name, description) and deleted, with
// Segment.campaigns and Campaign.segment agreeing throughout; bad input is
// refused with the field at fault and writes nothing.
func TestCampaignCRUD(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := createSegment(t, c, seedSegment())
		returning := createSegment(t, c, map[string]any{"name": "Returning Users", "kind": "STATIC"})

		welcome := createCampaign(t, c, map[string]any{"name": seedCampaign, "status": "ACTIVE", "segmentId": seg.ID})
		if welcome.Name != seedCampaign || welcome.Status != "ACTIVE" || welcome.segmentID() != seg.ID ||
			welcome.Segment.Name != seedSegmentName || welcome.ActivationCount != 0 || welcome.Description != nil {
			t.Fatalf("Welcome Mission: %+v", welcome)
		}
		newsletter := createCampaign(t, c, map[string]any{"name": "Newsletter", "description": "Monthly news"})
		if newsletter.Status != "DRAFT" || newsletter.Segment != nil || strOrNull(newsletter.Description) != "Monthly news" {
			t.Fatalf("a campaign without status and segment: %+v; want DRAFT with no segment", newsletter)
		}
		reminder := createCampaign(t, c, map[string]any{"name": "Reminder", "segmentId": returning.ID})
		if reminder.Status != "DRAFT" || reminder.segmentID() != returning.ID {
			t.Fatalf("a campaign with a segment and no status: %+v; want DRAFT", reminder)
		}
		if got := getCampaign(t, c, welcome.ID); got == nil || got.Status != "ACTIVE" || got.segmentID() != seg.ID ||
			!got.CreatedAt.Equal(welcome.CreatedAt) {
			t.Fatalf("Welcome Mission reads back as %+v", got)
		}

		// Refused creations write nothing.
		e := c.MustFail(t, "NOT_FOUND", `mutation { createCampaign(input: {name: "Ghost", segmentId: "seg_01JD3V6N5Q8K4Z2R7W9X1Y0B3C"}) { id } }`, nil)
		if e.Field() != "input.segmentId" {
			t.Fatalf("unknown segmentId: field %q, want input.segmentId", e.Field())
		}
		e = c.MustFail(t, "BAD_USER_INPUT", `mutation { createCampaign(input: {name: "  "}) { id } }`, nil)
		if e.Field() != "input.name" {
			t.Fatalf("blank name: field %q, want input.name", e.Field())
		}
		if _, n := campaignNames(t, c, nil); n != 3 {
			t.Fatalf("campaigns totalCount %d after refused creations, want 3", n)
		}

		// Both directions of the segment edge.
		if got := segmentCampaigns(t, c, seg.ID); !slices.Equal(got, []string{"Welcome Mission/ACTIVE"}) {
			t.Fatalf("seed segment's campaigns: %q", got)
		}
		if got := segmentCampaigns(t, c, returning.ID); !slices.Equal(got, []string{"Reminder/DRAFT"}) {
			t.Fatalf("Returning Users' campaigns: %q", got)
		}

		// Filters.
		filters := []struct {
			name  string
			where map[string]any
			want  []string
		}{
			{"status ACTIVE", map[string]any{"status": "ACTIVE"}, []string{"Welcome Mission"}},
			{"status DRAFT", map[string]any{"status": "DRAFT"}, []string{"Newsletter", "Reminder"}},
			{"statusIn", map[string]any{"statusIn": []string{"ACTIVE", "PAUSED"}}, []string{"Welcome Mission"}},
			{"status ENDED", map[string]any{"status": "ENDED"}, []string{}},
			{"no segment", map[string]any{"hasSegment": false}, []string{"Newsletter"}},
			{"by segment", map[string]any{"hasSegmentWith": []any{map[string]any{"id": seg.ID}}}, []string{"Welcome Mission"}},
			{"name", map[string]any{"nameContains": "Mission"}, []string{"Welcome Mission"}},
		}
		for _, f := range filters {
			if got, n := campaignNames(t, c, f.where); !slices.Equal(got, f.want) || n != len(f.want) {
				t.Errorf("%s: %q (totalCount %d), want %q", f.name, got, n, f.want)
			}
		}

		// Status.
		u := updateCampaign(t, c, welcome.ID, map[string]any{"status": "PAUSED"})
		if u.Status != "PAUSED" || u.segmentID() != seg.ID || u.Name != seedCampaign {
			t.Fatalf("paused: %+v", u)
		}
		if got, _ := campaignNames(t, c, map[string]any{"status": "ACTIVE"}); len(got) != 0 {
			t.Fatalf("ACTIVE after pausing: %q", got)
		}
		u = updateCampaign(t, c, welcome.ID, map[string]any{"status": "ACTIVE"})
		if u.Status != "ACTIVE" {
			t.Fatalf("resumed: %+v", u)
		}

		// Segment: set, move, clear; name and description.
		u = updateCampaign(t, c, newsletter.ID, map[string]any{"segmentId": seg.ID, "name": "Newsletter for new users"})
		if u.segmentID() != seg.ID || u.Name != "Newsletter for new users" || u.Status != "DRAFT" || strOrNull(u.Description) != "Monthly news" {
			t.Fatalf("segment set: %+v", u)
		}
		if got := segmentCampaigns(t, c, seg.ID); !slices.Equal(got, []string{"Welcome Mission/ACTIVE", "Newsletter for new users/DRAFT"}) {
			t.Fatalf("seed segment's campaigns: %q", got)
		}
		u = updateCampaign(t, c, newsletter.ID, map[string]any{"segmentId": returning.ID})
		if u.segmentID() != returning.ID {
			t.Fatalf("segment moved: %+v", u)
		}
		u = updateCampaign(t, c, newsletter.ID, map[string]any{"clearSegment": true, "description": "Quarterly news"})
		if u.Segment != nil || strOrNull(u.Description) != "Quarterly news" {
			t.Fatalf("clearSegment: %+v", u)
		}
		if got := segmentCampaigns(t, c, returning.ID); !slices.Equal(got, []string{"Reminder/DRAFT"}) {
			t.Fatalf("Returning Users' campaigns after clearSegment: %q", got)
		}
		if got := segmentCampaigns(t, c, seg.ID); !slices.Equal(got, []string{"Welcome Mission/ACTIVE"}) {
			t.Fatalf("seed segment's campaigns after the move: %q", got)
		}

		// Refused updates change nothing.
		before := getCampaign(t, c, reminder.ID)
		e = c.MustFail(t, "NOT_FOUND", `mutation($id: ID!) { updateCampaign(id: $id, input: {segmentId: "seg_01JD3V6N5Q8K4Z2R7W9X1Y0B3C", status: ACTIVE}) { id } }`,
			map[string]any{"id": reminder.ID})
		if e.Field() != "input.segmentId" {
			t.Fatalf("unknown segmentId on update: field %q", e.Field())
		}
		e = c.MustFail(t, "BAD_USER_INPUT", `mutation($id: ID!, $s: ID!) { updateCampaign(id: $id, input: {segmentId: $s, clearSegment: true}) { id } }`,
			map[string]any{"id": reminder.ID, "s": seg.ID})
		if e.Field() != "input.clearSegment" {
			t.Fatalf("segmentId with clearSegment: field %q", e.Field())
		}
		e = c.MustFail(t, "BAD_USER_INPUT", `mutation($id: ID!) { updateCampaign(id: $id, input: {name: ""}) { id } }`, map[string]any{"id": reminder.ID})
		if e.Field() != "input.name" {
			t.Fatalf("empty name on update: field %q", e.Field())
		}
		if after := getCampaign(t, c, reminder.ID); after.Status != before.Status || after.segmentID() != before.segmentID() ||
			after.Name != before.Name || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Fatalf("refused updates changed the campaign: %+v -> %+v", before, after)
		}
		c.MustFail(t, "NOT_FOUND", `mutation { updateCampaign(id: "cmp_01JD3V6N5Q8K4Z2R7W9X1Y0B3C", input: {status: PAUSED}) { id } }`, nil)

		// An ENDED campaign stays ended.
		updateCampaign(t, c, reminder.ID, map[string]any{"status": "ENDED"})
		e = c.MustFail(t, "BAD_USER_INPUT", `mutation($id: ID!) { updateCampaign(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": reminder.ID})
		if e.Field() != "input.status" {
			t.Fatalf("restarting an ENDED campaign: field %q", e.Field())
		}
		if got := getCampaign(t, c, reminder.ID); got.Status != "ENDED" {
			t.Fatalf("status %s, want ENDED", got.Status)
		}

		// Delete.
		var del struct{ DeleteCampaign string }
		c.MustDo(t, `mutation($id: ID!) { deleteCampaign(id: $id) }`, map[string]any{"id": reminder.ID}, &del)
		if del.DeleteCampaign != reminder.ID {
			t.Fatalf("deleteCampaign returned %q", del.DeleteCampaign)
		}
		if got := getCampaign(t, c, reminder.ID); got != nil {
			t.Fatalf("deleted campaign still resolves: %+v", got)
		}
		if got, n := campaignNames(t, c, nil); n != 2 || !slices.Equal(got, []string{"Newsletter for new users", "Welcome Mission"}) {
			t.Fatalf("campaigns after delete: %q (%d)", got, n)
		}
		if got := segmentCampaigns(t, c, returning.ID); len(got) != 0 {
			t.Fatalf("Returning Users still lists %q", got)
		}
		c.MustFail(t, "NOT_FOUND", `mutation($id: ID!) { deleteCampaign(id: $id) }`, map[string]any{"id": reminder.ID})
		if getSegment(t, c, returning.ID) == nil {
			t.Fatalf("deleting a campaign deleted its segment")
		}
	})
}

// TestDeleteSegmentWithCampaigns: a segment that an ACTIVE campaign uses
// cannot be deleted (CONFLICT, and it is all still there); one that only a
// DRAFT (or, once paused, the formerly ACTIVE) campaign uses is deleted, and
// those campaigns stay, with no segment.
func TestDeleteSegmentWithCampaigns(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := createSegment(t, c, seedSegment())
		welcome := createCampaign(t, c, map[string]any{"name": seedCampaign, "status": "ACTIVE", "segmentId": seg.ID})
		draftOnSeed := createCampaign(t, c, map[string]any{"name": "Draft on seed", "segmentId": seg.ID})

		e := c.MustFail(t, "CONFLICT", `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": seg.ID})
		if err := e.Contains("Welcome Mission"); err != nil {
			t.Fatalf("the CONFLICT should name the ACTIVE campaign: %v", err)
		}
		still := getSegment(t, c, seg.ID)
		if still == nil || strOrNull(still.ConditionText) != seedText || segmentCount(t, c) != 1 {
			t.Fatalf("after a refused delete the segment is %+v", still)
		}
		if got := getCampaign(t, c, welcome.ID); got.segmentID() != seg.ID || got.Status != "ACTIVE" {
			t.Fatalf("after a refused delete Welcome Mission is %+v", got)
		}
		if got := getCampaign(t, c, draftOnSeed.ID); got.segmentID() != seg.ID {
			t.Fatalf("after a refused delete the draft lost its segment: %+v", got)
		}

		// A segment that only a DRAFT campaign uses.
		other := createSegment(t, c, map[string]any{"name": "Beta testers", "kind": "STATIC"})
		draft := createCampaign(t, c, map[string]any{"name": "Beta launch", "segmentId": other.ID})
		var del struct{ DeleteSegment string }
		c.MustDo(t, `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": other.ID}, &del)
		if del.DeleteSegment != other.ID || getSegment(t, c, other.ID) != nil {
			t.Fatalf("segment used by a DRAFT campaign was not deleted")
		}
		if got := getCampaign(t, c, draft.ID); got == nil || got.Segment != nil || got.Status != "DRAFT" || got.Name != "Beta launch" {
			t.Fatalf("the DRAFT campaign after its segment was deleted: %+v", got)
		}

		// Once paused, the seed segment can go; both its campaigns stay.
		updateCampaign(t, c, welcome.ID, map[string]any{"status": "PAUSED"})
		c.MustDo(t, `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": seg.ID}, nil)
		if getSegment(t, c, seg.ID) != nil || segmentCount(t, c) != 0 {
			t.Fatalf("the seed segment was not deleted after pausing its campaign")
		}
		for _, id := range []string{welcome.ID, draftOnSeed.ID} {
			if got := getCampaign(t, c, id); got == nil || got.Segment != nil {
				t.Fatalf("campaign %s after its segment was deleted: %+v", id, got)
			}
		}
		if got, n := campaignNames(t, c, map[string]any{"hasSegment": false}); n != 3 {
			t.Fatalf("campaigns without a segment: %q", got)
		}
	})
}

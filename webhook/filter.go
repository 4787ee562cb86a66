package webhook

import (
	"slices"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/webhookdelivery"
)

// filter is an endpoint's topics, segments and campaigns.
type filter struct {
	topics    map[webhookdelivery.Topic]bool
	segments  []string
	campaigns []string
}

func newFilter(ep *ent.WebhookEndpoint) filter {
	f := filter{topics: map[webhookdelivery.Topic]bool{}, segments: ep.SegmentIds, campaigns: ep.CampaignIds}
	for _, t := range ep.Topics {
		f.topics[webhookdelivery.Topic(t)] = true
	}
	return f
}

// wantsLog reports whether any topic of the endpoint reads the log.
func (f filter) wantsLog(activations bool) bool {
	if activations {
		return f.topics[webhookdelivery.TopicCAMPAIGN_ACTIVATED]
	}
	return f.topics[webhookdelivery.TopicMEMBERSHIP_ENTERED] || f.topics[webhookdelivery.TopicMEMBERSHIP_EXITED]
}

// match: the topic is the endpoint's, the segment one of its segments (if
// it names any), and for an activation the campaign one of its campaigns
// (if it names any).
func (f filter) match(m *message) bool {
	if !f.topics[m.topic] {
		return false
	}
	if len(f.segments) > 0 && !slices.Contains(f.segments, m.segment) {
		return false
	}
	if m.topic == webhookdelivery.TopicCAMPAIGN_ACTIVATED && len(f.campaigns) > 0 && !slices.Contains(f.campaigns, m.campaign) {
		return false
	}
	return true
}

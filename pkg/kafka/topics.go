package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/threatcrumbs/crumbs/schemas"
)

// TopicSpec is a topic crumbs creates when it is missing.
type TopicSpec struct {
	Name      string
	Compacted bool // cleanup.policy=compact (context and state topics)
}

// ContextKinds lists the kinds of context records.
var ContextKinds = []string{"change", "deploy", "inventory", "account"}

// RetryStages lists the stages that read their replayed dead letters from a retry topic of
// their own (Topics.Retry), because other stages read their input topics too.
var RetryStages = []string{"sink"}

// AllTopics returns every topic of the pipeline: those of the built-in event kinds
// (schemas.Kinds), of the context kinds, alerts, dead letters and the rest, and the state of
// the given detector groups.
func (c Config) AllTopics(detectorGroups ...string) []TopicSpec {
	t := c.Topics()
	specs := c.KindTopics(schemas.Kinds.Names()...)
	for _, k := range ContextKinds {
		specs = append(specs, TopicSpec{Name: t.Context(k), Compacted: true})
	}
	specs = append(specs, TopicSpec{Name: t.Alerts()}, TopicSpec{Name: t.Incidents()}, TopicSpec{Name: t.DLQ()}, TopicSpec{Name: t.Health()},
		TopicSpec{Name: t.Deliveries(), Compacted: true}, TopicSpec{Name: t.Triage(), Compacted: true})
	for _, st := range RetryStages {
		specs = append(specs, TopicSpec{Name: t.Retry(st)})
	}
	for _, g := range detectorGroups {
		specs = append(specs, TopicSpec{Name: t.State(g), Compacted: true})
	}
	return specs
}

// KindTopics returns the raw and enriched topics of the named event kinds.
func (c Config) KindTopics(kinds ...string) []TopicSpec {
	t := c.Topics()
	specs := make([]TopicSpec, 0, 2*len(kinds))
	for _, k := range kinds {
		specs = append(specs, TopicSpec{Name: t.Raw(k)}, TopicSpec{Name: t.Enriched(k)})
	}
	return specs
}

// EnsureTopics creates the topics that do not exist yet, each with its family's retention
// (RetentionConfig); existing ones are left as they are (AlignTopics updates them). A topic
// this client may not even see is another role's, and is skipped; a missing topic it may not
// create is an error that says who creates topics.
func (c Config) EnsureTopics(ctx context.Context, cl *kgo.Client, specs []TopicSpec) error {
	adm := kadm.NewClient(cl)
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	existing, err := topicErrors(ctx, cl, names)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	t := c.Topics()
	for _, s := range specs {
		if err, ok := existing[s.Name]; ok && (err == nil || errors.Is(err, kerr.TopicAuthorizationFailed)) {
			continue
		}
		resp, err := adm.CreateTopic(ctx, c.Partitions, c.ReplicationFactor, c.Retention.topicConfigs(t, s), s.Name)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
		case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
			return fmt.Errorf("create topic %s: %w: this role may not create topics; the admin role does (crumbs up, or crumbs kafka topics)", s.Name, err)
		default:
			return fmt.Errorf("create topic %s: %w", s.Name, err)
		}
	}
	return nil
}

// AlignTopics sets the configured retention (retention.ms, retention.bytes, segment.bytes) on
// topics that exist, so a changed configuration, or a topic made before it had a size limit,
// takes effect. It needs the admin role.
func (c Config) AlignTopics(ctx context.Context, cl *kgo.Client, specs []TopicSpec) error {
	adm := kadm.NewClient(cl)
	t := c.Topics()
	var errs []error
	for _, s := range specs {
		var alter []kadm.AlterConfig
		for k, v := range c.Retention.topicConfigs(t, s) {
			if k != "cleanup.policy" {
				alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
			}
		}
		resp, err := adm.AlterTopicConfigs(ctx, alter, s.Name)
		if err == nil {
			var r kadm.AlterConfigsResponse
			if r, err = resp.On(s.Name, nil); err == nil {
				err = r.Err
			}
		}
		if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("set the retention of topic %s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// topicErrors asks the brokers about each topic: nil when it exists, else the brokers'
// error for it (unknown, or not authorized to see it). kadm.ListTopics fails as a whole when
// one topic is not authorized, which under roles is the rule.
func topicErrors(ctx context.Context, cl *kgo.Client, names []string) (map[string]error, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := make(map[string]error, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil {
			out[*t.Topic] = kerr.ErrorForCode(t.ErrorCode)
		}
	}
	return out, nil
}

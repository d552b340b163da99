package kafka

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TopicSpec is a topic crumbs creates when it is missing.
type TopicSpec struct {
	Name      string
	Compacted bool // cleanup.policy=compact (context and state topics)
}

// Kinds lists the event kinds that have raw and enriched topics.
var Kinds = []string{"process", "network", "file", "identity", "system"}

// ContextKinds lists the kinds of context records.
var ContextKinds = []string{"change", "deploy", "inventory", "account"}

// AllTopics returns every topic of the pipeline, for the given detector groups' state.
func (c Config) AllTopics(detectorGroups ...string) []TopicSpec {
	t := c.Topics()
	var specs []TopicSpec
	for _, k := range Kinds {
		specs = append(specs, TopicSpec{Name: t.Raw(k)}, TopicSpec{Name: t.Enriched(k)})
	}
	for _, k := range ContextKinds {
		specs = append(specs, TopicSpec{Name: t.Context(k), Compacted: true})
	}
	specs = append(specs, TopicSpec{Name: t.Alerts()}, TopicSpec{Name: t.DLQ()}, TopicSpec{Name: t.Health()},
		TopicSpec{Name: t.Deliveries(), Compacted: true}, TopicSpec{Name: t.Triage(), Compacted: true})
	for _, g := range detectorGroups {
		specs = append(specs, TopicSpec{Name: t.State(g), Compacted: true})
	}
	return specs
}

// EnsureTopics creates the topics that do not exist yet; existing ones are left as they are.
func (c Config) EnsureTopics(ctx context.Context, cl *kgo.Client, specs []TopicSpec) error {
	adm := kadm.NewClient(cl)
	retention := strconv.FormatInt(int64(c.RetentionHours)*3600*1000, 10)
	compact, deleteP := "compact", "delete"
	for _, s := range specs {
		cfg := map[string]*string{"cleanup.policy": &deleteP, "retention.ms": &retention}
		if s.Compacted {
			cfg = map[string]*string{"cleanup.policy": &compact}
		}
		resp, err := adm.CreateTopic(ctx, c.Partitions, c.ReplicationFactor, cfg, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !isTopicExists(err) {
			return fmt.Errorf("create topic %s: %w", s.Name, err)
		}
	}
	return nil
}

func isTopicExists(err error) bool {
	return err == kerr.TopicAlreadyExists || errorsIs(err, kerr.TopicAlreadyExists)
}

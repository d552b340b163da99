package main

import (
	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/sinks/outputs"
)

// alerts builds the alerts stage: crumbs.alerts to the outputs in alerts.outputs.
func (rt *runtime) alerts() (stage, error) {
	c := rt.cfg
	kcfg, err := rt.kafka(kafka.RoleAlerts)
	if err != nil {
		return nil, err
	}
	return outputs.New(c.Alerts, kcfg, outputs.Deps{
		Log: rt.log, Metrics: rt.reg, Counters: rt.stageCounters("alerts", c.Alerts.Group),
		Serde: rt.serde, InstanceID: rt.txnID(c.Alerts.Group), // a restart takes its partitions back at once
	})
}

func deliverCmd() *cobra.Command {
	return &cobra.Command{Use: "deliver", Short: "Run the alerts stage: alerts to the outputs in alerts.outputs (webhook, Slack, PagerDuty, ...), each once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOne(cmd, kafka.RoleAlerts, (*runtime).alerts) }}
}

package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

// kafkaScope is what the role table grants under this configuration: the topics under
// kafka.topic_prefix and each stage's consumer group.
func (c *Config) kafkaScope() kafka.Scope {
	return kafka.Scope{Topics: c.Kafka.Topics(), Groups: map[kafka.Role]string{
		kafka.RoleEnricher: c.Enricher.Group,
		kafka.RoleDetector: c.Detector.Group,
		kafka.RoleSink:     c.ClickHouse.Group,
		// The alerts stage and the console's triage take these groups (and transactional ids
		// starting with them and "-") until they have keys of their own.
		kafka.RoleAlerts: "crumbs-alerts",
		kafka.RoleTriage: "crumbs-triage",
	}}
}

// embeddedBroker reports whether the configured brokers are this host's embedded one: none
// configured, or only the loopback address at kafka.embedded.port.
func (c *Config) embeddedBroker() bool {
	switch len(c.Kafka.Brokers) {
	case 0:
		return true
	case 1:
		host, port, err := net.SplitHostPort(c.Kafka.Brokers[0])
		if err != nil || port != strconv.Itoa(c.Kafka.Embedded.Port) {
			return false
		}
		ip := net.ParseIP(host)
		return host == "localhost" || (ip != nil && ip.IsLoopback())
	}
	return false
}

// embeddedAddr is where the embedded broker of `crumbs up` listens.
func (c *Config) embeddedAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Kafka.Embedded.Port))
}

// roleKafka returns the Kafka configuration of a role's clients:
//   - under `crumbs up` with its embedded broker, the role's generated credentials (creds);
//   - with kafka.security.sasl.* configured, that, for every role (a real cluster: give each
//     stage's process its own principal);
//   - against the embedded broker of a `crumbs up` on this host, the role's credentials file,
//     which only root may read; anyone else is told so;
//   - otherwise the configuration as it is (a cluster without authentication).
func roleKafka(c *Config, r kafka.Role, creds map[kafka.Role]kafka.Credentials) (kafka.Config, error) {
	k := c.Kafka
	embedded := c.embeddedBroker()
	if len(k.Brokers) == 0 {
		k.Brokers = []string{c.embeddedAddr()}
	}
	if cr, ok := creds[r]; ok {
		k.Security.SASL = cr.SASL()
		return k, nil
	}
	if k.Security.SASL.Mechanism != "" || !embedded {
		return k, nil
	}
	cr, err := kafka.ReadCredentials(k.Embedded.CredentialsPath(), r)
	if err != nil {
		return k, fmt.Errorf("the embedded broker at %s needs the %s role's credentials: %w", c.embeddedAddr(), r, err)
	}
	k.Security.SASL = cr.SASL()
	return k, nil
}

// kafka returns the Kafka configuration of a role's clients in this process (roleKafka).
func (rt *runtime) kafka(r kafka.Role) (kafka.Config, error) {
	if rc, ok := rt.roles[r]; ok {
		return rc.cfg, rc.err
	}
	return roleKafka(rt.cfg, r, rt.creds)
}

package kafka

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ACLScript says how to print the role table for a real cluster (`crumbs kafka acls`).
type ACLScript struct {
	// BootstrapServer is passed to kafka-acls.sh and kafka-configs.sh.
	BootstrapServer string
	// CommandConfig is the client properties file of the cluster administrator who runs the
	// script.
	CommandConfig string
	// Principal is the principal of a role, with {role} standing for its name:
	// "User:crumbs-{role}" for SASL/SCRAM users, "User:CN=crumbs-{role}" (or what the
	// cluster's ssl.principal.mapping.rules make of the certificates' subjects) for mTLS.
	Principal string
	// SCRAMMechanism, when set, creates each role's SCRAM user (kafka-configs.sh) with the
	// password from the environment variable SCRAM_PASSWORD_<ROLE>; empty for mTLS.
	SCRAMMechanism string
	// Roles to print; empty: every role.
	Roles []Role
}

// PasswordVariable is the environment variable the script reads a role's password from.
func PasswordVariable(r Role) string {
	return "SCRAM_PASSWORD_" + strings.ToUpper(strings.ReplaceAll(string(r), "-", "_"))
}

var aclOpNames = map[kmsg.ACLOperation]string{
	opRead: "Read", opWrite: "Write", opCreate: "Create", opDelete: "Delete", opAlter: "Alter",
	opDescribe: "Describe", opDescribeConfigs: "DescribeConfigs", opAlterConfigs: "AlterConfigs",
	kmsg.ACLOperationIdempotentWrite: "IdempotentWrite", kmsg.ACLOperationAll: "All",
}

// WriteACLScript writes a POSIX shell script of kafka-acls.sh commands (and, for SCRAM,
// kafka-configs.sh commands creating the users) that give each role on a real cluster what
// the embedded broker gives it.
func (s Scope) WriteACLScript(w io.Writer, o ACLScript) error {
	roles := o.Roles
	if len(roles) == 0 {
		roles = Roles()
	}
	if !strings.Contains(o.Principal, "{role}") {
		return fmt.Errorf("principal %q: must contain {role}", o.Principal)
	}
	b := &strings.Builder{}
	fmt.Fprintf(b, "#!/bin/sh\n# crumbs' roles as Kafka ACLs, for a cluster administrator to run (kafka-acls.sh from the Kafka\n# distribution on PATH). Principals: %s.\n", o.Principal)
	if o.SCRAMMechanism != "" {
		fmt.Fprintf(b, "# Each role's SCRAM user is created with the password in $%s and so on: give each stage\n# its own as kafka.security.sasl.username/password (CRUMBS_KAFKA_SECURITY_SASL_PASSWORD).\n", PasswordVariable(RoleEnricher))
	}
	fmt.Fprintf(b, "set -eu\nBOOTSTRAP=%s\nADMIN_CONFIG=%s\n", shellQuote(o.BootstrapServer), shellQuote(o.CommandConfig))
	for _, r := range roles {
		principal := strings.ReplaceAll(o.Principal, "{role}", string(r))
		fmt.Fprintf(b, "\n# %s (%s): %s\n", r, principal, r.Does())
		if o.SCRAMMechanism != "" {
			fmt.Fprintf(b, "kafka-configs.sh --bootstrap-server \"$BOOTSTRAP\" --command-config \"$ADMIN_CONFIG\" --alter --entity-type users --entity-name %s \\\n  --add-config \"%s=[password=${%s:?set it to the password of %s}]\"\n",
				shellQuote(r.Username()), o.SCRAMMechanism, PasswordVariable(r), r.Username())
		}
		for _, g := range s.Grants(r) {
			fmt.Fprintf(b, "kafka-acls.sh --bootstrap-server \"$BOOTSTRAP\" --command-config \"$ADMIN_CONFIG\" --add --allow-principal %s", shellQuote(principal))
			for _, op := range g.Ops {
				fmt.Fprintf(b, " --operation %s", aclOpNames[op])
			}
			switch g.Resource {
			case kmsg.ACLResourceTypeCluster:
				b.WriteString(" --cluster")
			case kmsg.ACLResourceTypeTopic:
				fmt.Fprintf(b, " --topic %s", shellQuote(g.Name))
			case kmsg.ACLResourceTypeGroup:
				fmt.Fprintf(b, " --group %s", shellQuote(g.Name))
			case kmsg.ACLResourceTypeTransactionalId:
				fmt.Fprintf(b, " --transactional-id %s", shellQuote(g.Name))
			default:
				return fmt.Errorf("role %s: a grant on %s, which kafka-acls.sh cannot name", r, g.Resource)
			}
			if g.Prefixed {
				b.WriteString(" --resource-pattern-type prefixed")
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_.,:/=@%+-]+$`)

// shellQuote quotes s for a POSIX shell unless it needs no quotes.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

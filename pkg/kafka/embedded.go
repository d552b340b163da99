package kafka

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Embedded is the single-host broker `crumbs up` runs when no brokers are configured: franz-go's
// kfake, persisted to a data directory so a restart keeps topics, offsets and transactions.
type Embedded struct {
	cluster *kfake.Cluster
	creds   map[Role]Credentials // nil: an open broker
	stop    chan struct{}
	wg      sync.WaitGroup
	closing sync.Once
}

// StartEmbedded starts an embedded broker that anyone may use without credentials: for tests
// of stages, which need a broker and not its security. `crumbs up` runs StartSecureEmbedded.
// With an empty DataDir it keeps everything in memory.
func StartEmbedded(cfg EmbeddedConfig, extra ...kfake.Opt) (*Embedded, error) {
	return startEmbedded(context.Background(), cfg, nil, slog.Default(), nil, extra)
}

// StartSecureEmbedded starts the embedded broker as `crumbs up` runs it. Every client must
// authenticate (SASL/SCRAM-SHA-512) as one of the roles, and may do only what the role table
// grants it under scope (ACLs, enforced by the broker); admin is its superuser. The roles'
// credentials come from the credentials directory (cfg.Embedded.CredentialsPath()), generated
// there at the first start; with neither it nor a data directory they live in memory (tests).
// The broker's own copy of its users and ACLs in the data directory is rebuilt from the
// credentials files and the role table at every start, so rotating a password (removing its
// file) or a new role in the table takes effect on restart.
//
// The broker deletes what is past its topics' retention every cfg.Embedded.RetentionInterval.
// When the port is still held (a previous crumbs still exiting), it waits for it up to
// cfg.Embedded.PortWait, saying so once in log.
func StartSecureEmbedded(ctx context.Context, cfg Config, scope Scope, log *slog.Logger, extra ...kfake.Opt) (*Embedded, error) {
	creds, err := EmbeddedCredentials(cfg.Embedded)
	if err != nil {
		return nil, err
	}
	return StartSecureEmbeddedWith(ctx, cfg, scope, creds, log, extra...)
}

// EmbeddedCredentials returns the roles' credentials of the embedded broker: from the
// credentials directory (generated there at the first start), or, with neither it nor a data
// directory, generated in memory.
func EmbeddedCredentials(cfg EmbeddedConfig) (map[Role]Credentials, error) {
	var creds map[Role]Credentials
	var err error
	if dir := cfg.CredentialsPath(); dir != "" {
		creds, err = EnsureCredentials(dir)
	} else {
		creds, err = NewCredentials()
	}
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	return creds, nil
}

// StartSecureEmbeddedWith is StartSecureEmbedded with every role's credentials given: for a
// process that may not read the credentials directory, handed them by the one that may
// (crumbs up's unprivileged stages process).
func StartSecureEmbeddedWith(ctx context.Context, cfg Config, scope Scope, creds map[Role]Credentials, log *slog.Logger, extra ...kfake.Opt) (*Embedded, error) {
	for _, r := range Roles() {
		if _, ok := creds[r]; !ok {
			return nil, fmt.Errorf("embedded kafka: no credentials for role %s", r)
		}
	}
	admin := creds[RoleAdmin]
	opts := []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser(admin.Mechanism, admin.Username, admin.Password)}
	for _, r := range Roles() {
		if c := creds[r]; r != RoleAdmin {
			opts = append(opts, kfake.User(c.Mechanism, c.Username, c.Password))
		}
	}
	e, err := startEmbedded(ctx, cfg.Embedded, creds, log, opts, extra)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.applyACLs(actx, cfg, scope); err != nil {
		e.Close()
		return nil, fmt.Errorf("embedded kafka: set the roles' ACLs: %w", err)
	}
	return e, nil
}

func startEmbedded(ctx context.Context, cfg EmbeddedConfig, creds map[Role]Credentials, log *slog.Logger, auth, extra []kfake.Opt) (*Embedded, error) {
	opts := append([]kfake.Opt{kfake.NumBrokers(1), kfake.Ports(cfg.Port), kfake.ListenFn(waitForPort(ctx, cfg.PortWait, log))}, auth...)
	if cfg.DataDir != "" {
		if err := privateDir(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("embedded kafka: kafka.embedded.data_dir: %w", err)
		}
		// kfake's copy of its users (salted passwords) would override those given here;
		// the credentials files are the truth, so it is rebuilt from them at every start.
		if err := os.Remove(filepath.Join(cfg.DataDir, "sasl.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("embedded kafka: reset the broker's users: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	opts = append(opts, extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: start on port %d: %w", cfg.Port, err)
	}
	e := &Embedded{cluster: c, creds: creds, stop: make(chan struct{})}
	every := cfg.RetentionInterval
	if every <= 0 {
		every = DefaultConfig().Embedded.RetentionInterval
	}
	e.wg.Add(1)
	go e.applyRetention(every)
	return e, nil
}

// privateDir creates dir for root alone (0700), and takes group and others' access away from
// one that exists: the broker's log holds every event, and its state the salted passwords.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, fi.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("make %s private: %w", dir, err)
		}
	}
	return nil
}

// waitForPort listens like net.Listen, except that while the address is in use it tries again
// until wait has passed, logging once that it waits.
func waitForPort(ctx context.Context, wait time.Duration, log *slog.Logger) func(network, addr string) (net.Listener, error) {
	return func(network, addr string) (net.Listener, error) {
		deadline := time.Now().Add(wait)
		logged := false
		for {
			ln, err := net.Listen(network, addr)
			if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
				return ln, err
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%w (still in use after waiting %s: kafka.embedded.port_wait)", err, wait)
			}
			if !logged {
				log.Warn("embedded kafka: port in use, waiting for it to be free (a previous crumbs still exiting?)", "addr", addr, "up_to", wait)
				logged = true
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// applyRetention deletes what is past retention.ms and retention.bytes every interval: kfake
// does it only at its compaction interval (an hour), which lets a fast topic far overshoot
// its size limit meanwhile.
func (e *Embedded) applyRetention(every time.Duration) {
	defer e.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.cluster.ApplyRetention()
		}
	}
}

// applyACLs makes the broker's ACLs those of the role table: missing ones are created, others
// deleted (an ACL crumbs did not write has no business on its broker).
func (e *Embedded) applyACLs(ctx context.Context, cfg Config, scope Scope) error {
	ccfg := e.ClientConfig(cfg, RoleAdmin)
	cl, err := kgo.NewClient(ccfg.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	want := scope.acls()

	dreq := kmsg.NewPtrDescribeACLsRequest()
	dreq.ResourceType, dreq.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	dreq.Operation, dreq.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	if err := kerrFor(dresp.ErrorCode, dresp.ErrorMessage); err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	del := kmsg.NewPtrDeleteACLsRequest()
	for _, res := range dresp.Resources {
		for _, a := range res.ACLs {
			k := aclKey{principal: a.Principal, resource: res.ResourceType, name: res.ResourceName, pattern: res.ResourcePatternType, op: a.Operation}
			if a.PermissionType == kmsg.ACLPermissionTypeAllow && a.Host == "*" && want[k] {
				delete(want, k)
				continue
			}
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourceName, f.ResourcePatternType = res.ResourceType, kmsg.StringPtr(res.ResourceName), res.ResourcePatternType
			f.Principal, f.Host, f.Operation, f.PermissionType = kmsg.StringPtr(a.Principal), kmsg.StringPtr(a.Host), a.Operation, a.PermissionType
			del.Filters = append(del.Filters, f)
		}
	}
	if len(del.Filters) > 0 {
		resp, err := del.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("delete stale: %w", err)
		}
		for _, r := range resp.Results {
			if err := kerrFor(r.ErrorCode, r.ErrorMessage); err != nil {
				return fmt.Errorf("delete stale: %w", err)
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	creq := kmsg.NewPtrCreateACLsRequest()
	for k := range want {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = k.resource, k.name, k.pattern
		c.Principal, c.Host, c.Operation, c.PermissionType = k.principal, "*", k.op, kmsg.ACLPermissionTypeAllow
		creq.Creations = append(creq.Creations, c)
	}
	cresp, err := creq.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	for _, r := range cresp.Results {
		if err := kerrFor(r.ErrorCode, r.ErrorMessage); err != nil {
			return fmt.Errorf("create: %w", err)
		}
	}
	return nil
}

// Addrs returns the broker addresses to use as seeds.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Credentials returns a role's credentials; false on an open broker.
func (e *Embedded) Credentials(r Role) (Credentials, bool) {
	c, ok := e.creds[r]
	return c, ok
}

// ClientConfig returns base pointed at this broker and, on a secure broker, authenticating as
// the role.
func (e *Embedded) ClientConfig(base Config, r Role) Config {
	base.Brokers = e.Addrs()
	if c, ok := e.creds[r]; ok {
		base.Security.SASL = c.SASL()
	}
	return base
}

// Cluster returns the kfake cluster, for tests that inject faults.
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Close stops the broker, flushing its data directory.
func (e *Embedded) Close() {
	e.closing.Do(func() {
		close(e.stop)
		e.wg.Wait()
		e.cluster.Close()
	})
}

// kerrFor is the error of a response code, with the broker's message when it gave one.
func kerrFor(code int16, msg *string) error {
	err := kerr.ErrorForCode(code)
	if err != nil && msg != nil && *msg != "" {
		return fmt.Errorf("%w: %s", err, *msg)
	}
	return err
}

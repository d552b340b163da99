package enrichers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/tlsfiles"
)

// ContextAPI serves the context HTTP API (enricher.api.*), for change, deployment and inventory
// systems:
//
//	POST   /v1/context/{kind}       JSON or YAML, one record or a list; all or nothing
//	DELETE /v1/context/{kind}/{id}  publishes a tombstone
//	GET    /v1/context/{kind}       every record of the kind, as JSON
//	GET    /v1/context/{kind}/{id}  one record, as JSON
//
// Every request needs "Authorization: Bearer <token>" with a configured token. The API serves
// TLS when enricher.api.tls.cert_file and key_file are set, asks for a client certificate
// signed by enricher.api.tls.client_ca_file when that is set, and refuses to start on an
// address other than loopback without TLS. Invalid input
// gets HTTP 400 with {"error": ..., "problems": [{"record", "line", "kind", "id", "field",
// "problem"}]}. Reads come from the API's own materialisation of the context topics, updated
// with what it publishes so a client reads its own writes.
type ContextAPI struct {
	cfg    APIConfig
	kcfg   kafka.Config
	serde  *avro.Serde
	log    *slog.Logger
	tables *ContextTables
	tokens [][32]byte
	tls    *tls.Config // nil: plain HTTP (loopback only)
	ready  chan struct{}
	addr   chan net.Addr
}

// NewContextAPI returns the API stage; nothing is opened until Run.
func NewContextAPI(cfg Config, kcfg kafka.Config, serde *avro.Serde, log *slog.Logger) (*ContextAPI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.API.Listen == "" {
		return nil, errors.New("enricher.api.listen: must be set to serve the context API")
	}
	if log == nil {
		log = slog.Default()
	}
	a := &ContextAPI{cfg: cfg.API, kcfg: kcfg, serde: serde, log: log,
		tables: NewContextTables(cfg.MaxContextRecords, cfg.DeployHistory), ready: make(chan struct{}), addr: make(chan net.Addr, 1)}
	for _, t := range cfg.API.Tokens {
		a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
	}
	if t := cfg.API.TLS; t.Enabled() {
		tc, err := tlsfiles.ServerConfig(tlsfiles.Files{Key: "enricher.api.tls", CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile}, log)
		if err != nil {
			return nil, err
		}
		a.tls = tc
	}
	return a, nil
}

// Addr returns the address the API listens on, once it does (tests listen on port 0).
func (a *ContextAPI) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case ad := <-a.addr:
		a.addr <- ad
		return ad, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run materialises the context topics, then serves until ctx is done.
func (a *ContextAPI) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	ready, err := materialise(ctx, &wg, a.kcfg, a.serde, a.tables, a.log)
	if err != nil {
		return fmt.Errorf("context api: %w", err)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("enricher.api.listen: %s: %w", a.cfg.Listen, err)
	}
	a.addr <- ln.Addr()
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelInfo)}
	if a.tls != nil {
		srv.TLSConfig = a.tls
		ln = tls.NewListener(ln, a.tls)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	a.log.Info("context API serving", "addr", ln.Addr().String(), "tls", a.tls != nil, "client_certificates", a.tls != nil && a.tls.ClientCAs != nil)
	select {
	case err := <-done:
		return fmt.Errorf("context api: %w", err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	err = srv.Shutdown(sctx)
	<-done
	return err
}

// Handler returns the API's HTTP handler.
func (a *ContextAPI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/context/{kind}", a.post)
	mux.HandleFunc("DELETE /v1/context/{kind}/{id}", a.delete)
	mux.HandleFunc("GET /v1/context/{kind}", a.list)
	mux.HandleFunc("GET /v1/context/{kind}/{id}", a.get)
	return a.authenticated(mux)
}

func (a *ContextAPI) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(tok))
		valid := 0
		for _, t := range a.tokens {
			valid |= subtle.ConstantTimeCompare(sum[:], t[:])
		}
		if !ok || valid == 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="crumbs"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or unknown bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiError is the JSON body of every error response.
type apiError struct {
	Error    string    `json:"error"`
	Problems []Problem `json:"problems,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *ContextAPI) kindOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	kind := r.PathValue("kind")
	if !slices.Contains(ContextKinds, kind) {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("unknown kind %q (have: %s)", kind, strings.Join(ContextKinds, ", ")),
			Problems: []Problem{{Field: "kind", Problem: fmt.Sprintf("unknown kind %q", kind)}}})
		return "", false
	}
	return kind, true
}

func (a *ContextAPI) post(w http.ResponseWriter, r *http.Request) {
	kind, ok := a.kindOf(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: fmt.Sprintf("read body: %v", err)})
		return
	}
	recs, err := ParseContext(body, ParseOptions{Kind: kind, Source: "request", Origin: "api", Known: a.tables.KnownService})
	var inv *InvalidContextError
	if errors.As(err, &inv) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid context: nothing was published", Problems: inv.Problems})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	if !a.publish(w, r, recs) {
		return
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"published": len(recs), "kind": kind, "ids": ids})
}

// publish produces records and applies them to the API's tables, so that a GET right after
// sees them.
func (a *ContextAPI) publish(w http.ResponseWriter, r *http.Request, recs []ContextRecord) bool {
	if err := PublishContext(r.Context(), a.kcfg, a.serde, recs); err != nil {
		a.log.Warn("context not published", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
		return false
	}
	for _, rec := range recs {
		if rec.Native == nil {
			a.tables.Delete(rec.Kind, rec.ID)
			continue
		}
		src, _ := rec.Native["source"].(string)
		_ = a.tables.Put(rec.Record, src)
	}
	return true
}

func (a *ContextAPI) delete(w http.ResponseWriter, r *http.Request) {
	kind, ok := a.kindOf(w, r)
	if !ok {
		return
	}
	rec, err := Tombstone(kind, r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	if !a.publish(w, r, []ContextRecord{rec}) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": 1, "kind": kind, "ids": []string{rec.ID}})
}

func (a *ContextAPI) list(w http.ResponseWriter, r *http.Request) {
	kind, ok := a.kindOf(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"kind": kind, "records": a.tables.List(kind)})
}

func (a *ContextAPI) get(w http.ResponseWriter, r *http.Request) {
	kind, ok := a.kindOf(w, r)
	if !ok {
		return
	}
	rec, found := a.tables.Get(kind, r.PathValue("id"))
	if !found {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no %s record with id %q", kind, r.PathValue("id"))})
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

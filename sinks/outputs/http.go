package outputs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// httpPoster posts JSON to one receiver over HTTP(S).
type httpPoster struct {
	url    string
	client *http.Client
}

// newHTTPPoster checks rawURL (resolving `env:NAME`) and builds a client with the output's TLS
// settings. Redirects are not followed: a POST is not replayed to wherever a receiver points.
func newHTTPPoster(key string, o OutputConfig, rawURL string) (*httpPoster, error) {
	u, err := secretValue(key+".url", rawURL)
	if err != nil {
		return nil, err
	}
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return nil, fmt.Errorf("%s.url: %q: must be an http or https URL", key, redactURL(u))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tlsCfg, err := o.TLS.config(key, parsed.Hostname())
	if err != nil {
		return nil, err
	}
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = 4
	return &httpPoster{url: u, client: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// post sends body and classifies the answer: 2xx is delivered; 400, 413, 415 and 422 refuse
// the alert for its content; anything else (another 4xx such as 401, 403 or 404, which say the
// output's credentials or URL are wrong, 429 and 5xx with the receiver's Retry-After, 3xx, a
// network error) is transient: retried within the output's bound.
func (p *httpPoster) post(ctx context.Context, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "crumbs")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %w", redactURL(p.url), scrubURL(err, p.url))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge || code == http.StatusUnsupportedMediaType ||
		code == http.StatusUnprocessableEntity:
		return refused("HTTP %d from %s: %s", code, redactURL(p.url), clean(snippet))
	case code >= 400:
		return &retryAfter{err: fmt.Errorf("HTTP %d from %s: %s", code, redactURL(p.url), clean(snippet)), after: parseRetryAfter(resp.Header.Get("Retry-After"))}
	default:
		return fmt.Errorf("HTTP %d from %s (redirects are not followed)", code, redactURL(p.url))
	}
}

func (p *httpPoster) close() { p.client.CloseIdleConnections() }

// scrubURL keeps a URL's secret path (a Slack webhook's) out of an error message.
func scrubURL(err error, u string) error {
	msg := err.Error()
	if !strings.Contains(msg, u) {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(msg, u, redactURL(u)))
}

// parseRetryAfter reads Retry-After in seconds or as an HTTP date; at most 10 minutes.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), 10*time.Minute)
}

// clean makes a receiver's answer safe to log: printable, one line.
func clean(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return ' '
		}
		return r
	}, string(b))
	return strings.TrimSpace(s)
}

package enrichers

import (
	"encoding/binary"
	"math"

	"github.com/threatcrumbs/crumbs/schemas"
)

// The enricher writes the Enrichment record (schemas/avro/*.avsc, field "enrichment") in Avro
// binary by hand: change, deploy and account refs are encoded once when their context record
// arrives and copied into every event they apply to. enrichmentShape is the schema this encoder
// writes; the enricher checks at start that every event schema's enrichment field has exactly
// this shape and otherwise falls back to goavro.

func appendLong(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = appendLong(b, int64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendDouble(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendStrings(b []byte, ss []string) []byte {
	if len(ss) > 0 {
		b = appendLong(b, int64(len(ss)))
		for _, s := range ss {
			b = appendString(b, s)
		}
	}
	return append(b, 0)
}

// appendChangeRef writes crumbs.ChangeRef.
func appendChangeRef(b []byte, c *schemas.ChangeRef) []byte {
	b = appendString(b, c.ID)
	b = appendString(b, c.Type)
	b = appendString(b, c.Title)
	if len(c.Expected) > 0 {
		b = appendLong(b, int64(len(c.Expected)))
		for _, e := range c.Expected {
			b = appendString(b, e.Service)
			b = appendString(b, e.Metric)
			b = appendDouble(b, e.UpToFactor)
		}
	}
	return append(b, 0)
}

// appendDeployRef writes crumbs.DeployRef.
func appendDeployRef(b []byte, d *schemas.DeployRef) []byte {
	b = appendString(b, d.ID)
	b = appendString(b, d.Service)
	b = appendString(b, d.Version)
	return appendLong(b, d.DeployedAt)
}

// appendAccountRef writes crumbs.AccountRef.
func appendAccountRef(b []byte, a *schemas.AccountRef) []byte {
	b = appendString(b, a.Name)
	b = appendString(b, a.Type)
	b = appendBool(b, a.Interactive)
	b = appendStrings(b, a.AllowedSources)
	return appendStrings(b, a.AllowedUsers)
}

// appendHostJoin writes the enrichment's fields that depend on the host and the time:
// service, environment, role, changes and deploy, taking the refs pre-encoded.
func appendHostJoin(b []byte, hj *hostJoin) []byte {
	b = appendString(b, hj.service)
	b = appendString(b, hj.env)
	b = appendString(b, hj.role)
	if len(hj.changes) > 0 {
		b = appendLong(b, int64(len(hj.changes)))
		for _, c := range hj.changes {
			b = append(b, c.enc...)
		}
	}
	b = append(b, 0)
	if hj.deploy != nil {
		b = appendLong(b, 1)
		return append(b, hj.deploy.enc...)
	}
	return appendLong(b, 0)
}

// appendEnrichmentUnion writes the value of an event's enrichment field: the union branch
// crumbs.Enrichment (index 1) and the record, from the host's join pre-encoded and the
// verdict.
func appendEnrichmentUnion(b []byte, verdict, reason string, j *joined) []byte {
	b = appendLong(b, 1)
	b = append(b, j.host.enc...)
	b = appendString(b, verdict)
	b = appendString(b, reason)
	if j.account != nil {
		b = appendLong(b, 1)
		b = append(b, j.account.enc...)
	} else {
		b = appendLong(b, 0)
	}
	return b
}

// enrichmentShape is the shape of the Enrichment union appendEnrichmentUnion writes, in the
// notation of shapeOf.
const enrichmentShape = `union<null,{service:string,environment:string,role:string,` +
	`changes:array<{id:string,type:string,title:string,expected:array<{service:string,metric:string,up_to_factor:double}>}>,` +
	`deploy:union<null,{id:string,service:string,version:string,deployed_at:long}>,verdict:string,verdict_reason:string,` +
	`account:union<null,{name:string,type:string,interactive:boolean,allowed_sources:array<string>,allowed_users:array<string>}>}>`

// enrichedSize bounds the bytes appendEnrichmentUnion writes.
func enrichedSize(verdict, reason string, j *joined) int {
	n := 4*binary.MaxVarintLen64 + len(j.host.enc) + len(verdict) + len(reason)
	if j.account != nil {
		n += len(j.account.enc)
	}
	return n
}

package engine

import (
	"testing"
)

// TestOnlyPinsAgreeWithCEL: a condition made only of pins is decided without CEL, with CEL's
// answer on events that hold the values, other values, or no such field.
func TestOnlyPinsAgreeWithCEL(t *testing.T) {
	conds := map[string]bool{ // condition -> decided without CEL
		`action == "auth" && identity.result == "failure"`:                    true,
		`"auth" == action && identity.service in ["sshd", "login"]`:           true,
		`has(enrichment.account) && enrichment.account.type == "service"`:     false,
		`enrichment.account.type == "service"`:                                true,
		`action == "auth" && identity.target_user != "root"`:                  true,
		`identity.remote_host != "" && action == "auth"`:                      true,
		`action == "auth" && identity.user != identity.target_user`:           false,
		`action == "auth" && (identity.result == "failure" || action == "x")`: false,
	}
	var events []map[string]any
	for _, raw := range []map[string]any{
		{"action": "auth", "identity": map[string]any{"result": "failure", "service": "sshd", "target_user": "root"}},
		{"action": "auth", "identity": map[string]any{"result": "success", "service": "login", "target_user": "bob"}},
		{"action": "session_open", "identity": map[string]any{"result": "failure", "service": "su"}},
		{"action": "auth", "enrichment": map[string]any{"account": map[string]any{"type": "service"}}},
		{"action": "auth", "enrichment": map[string]any{"account": map[string]any{"type": "human"}}},
		{"action": "auth", "identity": map[string]any{"target_user": "alice", "user": "alice", "remote_host": "192.0.2.1"}},
	} {
		ev, err := FixtureEvent("identity", raw, "e")
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	for expr, native := range conds {
		c, err := CompileCEL("identity", expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		cc := c.(*celCondition)
		if got := cc.onlyPins != nil; got != native {
			t.Errorf("%s: decided without CEL %v, want %v", expr, got, native)
		}
		viaCEL := *cc
		viaCEL.onlyPins = nil
		for i, ev := range events {
			act := Activation(ev)
			want, err := viaCEL.Match(act)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := cc.Match(act); got != want {
				t.Errorf("%s on event %d: %v, CEL says %v", expr, i, got, want)
			}
		}
	}
}

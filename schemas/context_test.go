package schemas_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/threatcrumbs/crumbs/schemas"
)

func TestTimestampForms(t *testing.T) {
	want := schemas.TimestampOf(time.Date(2026, 11, 27, 6, 0, 0, 500, time.UTC))
	js, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`"2026-11-27T06:00:00.0000005Z"`, string(js)); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	var fromJSON, fromYAML schemas.Timestamp
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte("2026-11-27T06:00:00.0000005Z"), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]schemas.Timestamp{want, want}, []schemas.Timestamp{fromJSON, fromYAML}); diff != "" {
		t.Errorf("parsed (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`"next tuesday"`), &fromJSON); err == nil {
		t.Error("a malformed time was accepted")
	}
}

func TestContextValidate(t *testing.T) {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	cases := []struct {
		name string
		rec  interface{ Validate() []schemas.FieldProblem }
		want []schemas.FieldProblem
	}{
		{"valid change", &schemas.ChangeRecord{ID: "C", Type: schemas.ChangeLaunch, Services: []string{"shop"}, StartsAt: 1, EndsAt: 2}, nil},
		{"change without scope or window", &schemas.ChangeRecord{ID: "C", Type: schemas.ChangeCampaign}, []schemas.FieldProblem{
			{Field: "services", Problem: "is required: name the services or the hosts the change affects"},
			{Field: "starts_at", Problem: "is required"}, {Field: "ends_at", Problem: "is required"}}},
		{"bad expected effect", &schemas.ChangeRecord{ID: "C", Type: schemas.ChangeLaunch, Hosts: []string{"web-1"}, StartsAt: 1, EndsAt: 2,
			Expected: []schemas.ExpectedEffect{{Service: "shop", Metric: "cpu"}}}, []schemas.FieldProblem{
			{Field: "expected[0].up_to_factor", Problem: "0: must be greater than 0"}}},
		{"valid deploy", &schemas.DeployRecord{ID: "D", Service: "shop", Version: "1", DeployedAt: 1,
			Artifacts: []schemas.Artifact{{Path: "/opt/a", SHA256: sha, Mode: "4755"}}}, nil},
		{"deploy with duplicate path and upper-case sha", &schemas.DeployRecord{ID: "D", Service: "shop", Version: "1", DeployedAt: 1,
			Artifacts: []schemas.Artifact{{Path: "/opt/a", SHA256: sha}, {Path: "/opt/a", SHA256: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}}},
			[]schemas.FieldProblem{{Field: "artifacts[1].path", Problem: `"/opt/a": already listed as artifacts[0]`},
				{Field: "artifacts[1].sha256", Problem: `"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08": must be lower-case hex`}}},
		{"valid account", &schemas.AccountRecord{ID: "a", Name: "a", Type: schemas.AccountHuman,
			AllowedSources: []string{"10.0.0.0/8", "fd00::/8", "10.1.2.3", "bastion-1.example.com"}}, nil},
		{"account missing name", &schemas.AccountRecord{ID: "a", Type: schemas.AccountSystem, AllowedUsers: []string{""}}, []schemas.FieldProblem{
			{Field: "name", Problem: "is required"}, {Field: "allowed_users[0]", Problem: "must not be empty"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.rec.Validate()); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

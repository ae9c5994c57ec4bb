package spec

import (
	"maps"
	"os"
	"testing"
)

// TestParseSecrets: secrets lists and {secret: NAME} env values are parsed
// apart from plain env values, so nothing that stores or shows env can hold
// a secret, and SecretVars applies the same override order as env.
func TestParseSecrets(t *testing.T) {
	data, err := os.ReadFile("testdata/valid/secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("secrets.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"PGHOST": "db.internal"}; !maps.Equal(p.Env, want) {
		t.Errorf("pipeline env = %v, want %v", p.Env, want)
	}
	if want := map[string]string{"PGPASSWORD": "warehouse_password"}; !maps.Equal(p.SecretEnv, want) {
		t.Errorf("pipeline secret env = %v, want %v", p.SecretEnv, want)
	}
	task := &p.Tasks[0]
	if want := map[string]string{"PGUSER": "loader"}; !maps.Equal(task.Env, want) {
		t.Errorf("task env = %v, want %v", task.Env, want)
	}
	want := map[string]string{
		"PGPASSWORD":    "warehouse_password",
		"SLACK_WEBHOOK": "slack_webhook",
		"S3_KEY":        "s3_key",
		"API_KEY":       "vendor_api_key",
	}
	if got := p.SecretVars(task); !maps.Equal(got, want) {
		t.Errorf("SecretVars = %v, want %v", got, want)
	}
	if got := p.SecretParams(); len(got) != 1 || got[0] != "api_token" {
		t.Errorf("SecretParams = %v, want [api_token]", got)
	}
}

func TestSecretVarsOverride(t *testing.T) {
	p := &Pipeline{
		Secrets:   []string{"db_password"},
		SecretEnv: map[string]string{"TOKEN": "pipeline_token"},
	}
	tests := []struct {
		name string
		task Task
		want map[string]string
	}{
		{"inherits", Task{}, map[string]string{"DB_PASSWORD": "db_password", "TOKEN": "pipeline_token"}},
		{"plain value replaces a secret", Task{Env: map[string]string{"TOKEN": "public"}}, map[string]string{"DB_PASSWORD": "db_password"}},
		{"task secret replaces the pipeline's", Task{SecretEnv: map[string]string{"TOKEN": "task_token"}}, map[string]string{"DB_PASSWORD": "db_password", "TOKEN": "task_token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.SecretVars(&tt.task); !maps.Equal(got, tt.want) {
				t.Errorf("SecretVars = %v, want %v", got, tt.want)
			}
		})
	}
	if got := (&Pipeline{}).SecretVars(&Task{}); got != nil {
		t.Errorf("no secrets: SecretVars = %v, want nil", got)
	}
}
